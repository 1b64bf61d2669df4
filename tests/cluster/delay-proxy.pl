#!/usr/bin/perl
# delay-proxy.pl - a small TCP proxy that delays every chunk, in each direction, by a fixed time.
#
# Usage: delay-proxy.pl LISTEN_ADDR:PORT UPSTREAM_ADDR:PORT SOURCE_ADDR DELAY_MS
#
# Part of the ClusterSql Galera test harness (tests/cluster/cluster.sh `slow`). The kernel here has no
# netem, so added latency is simulated in user space: each chunk read from one side is written to the
# other side DELAY_MS later (order kept, chunks pipelined, so a request/response round trip pays the
# delay twice). Upstream connections bind SOURCE_ADDR, which the harness's DNAT rule excludes so that
# the proxy's own connection reaches the real server. One forked child per connection; loopback only.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);
use POSIX ();
use Errno qw(EAGAIN EWOULDBLOCK EINTR);

my ($listen, $upstream, $source, $ms) = @ARGV;
die "usage: $0 LISTEN_ADDR:PORT UPSTREAM_ADDR:PORT SOURCE_ADDR DELAY_MS\n"
    unless defined $ms && $ms =~ /^\d+$/;
for my $a ($listen, $upstream, $source) {
    die "refusing non-loopback address $a\n" unless $a =~ /^127\./;
}
my $delay = $ms / 1000.0;

$SIG{CHLD} = 'IGNORE';    # children are reaped automatically
$SIG{PIPE} = 'IGNORE';

my $server = IO::Socket::INET->new(
    LocalAddr => $listen, Listen => 256, ReuseAddr => 1, Proto => 'tcp')
    or die "cannot listen on $listen: $!\n";
$| = 1;
print "delay-proxy pid $$: $listen -> $upstream (source $source), ${ms} ms per chunk each way\n";

while (1) {
    my $client = $server->accept;
    unless ($client) {
        next if $! == EINTR;
        warn "accept: $!\n";
        select(undef, undef, undef, 0.05);
        next;
    }
    my $pid = fork;
    if (!defined $pid) { warn "fork: $!\n"; close $client; next; }
    if ($pid == 0) {
        close $server;
        pump($client);
        POSIX::_exit(0);
    }
    close $client;
}

sub pump {
    my ($client) = @_;
    my $up = IO::Socket::INET->new(
        PeerAddr => $upstream, LocalAddr => $source, Proto => 'tcp', Timeout => 60);
    unless ($up) { warn "connect $upstream: $!\n"; return; }
    for my $s ($client, $up) {
        $s->blocking(0);
        setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    }
    # One record per direction: chunks wait in q as [due_time, data] until due.
    my @dirs = (
        { from => $client, to => $up,     q => [], eof => 0, done => 0 },
        { from => $up,     to => $client, q => [], eof => 0, done => 0 },
    );
    while (1) {
        my $now = time;
        my $rs = IO::Select->new;
        my $ws = IO::Select->new;
        my $timeout;
        for my $d (@dirs) {
            $rs->add($d->{from}) unless $d->{eof};
            if (@{ $d->{q} }) {
                my $wait = $d->{q}[0][0] - $now;
                if ($wait <= 0) { $ws->add($d->{to}); }
                elsif (!defined $timeout || $wait < $timeout) { $timeout = $wait; }
            } elsif ($d->{eof} && !$d->{done}) {
                shutdown($d->{to}, 1);    # pass the half-close on once everything before it is sent
                $d->{done} = 1;
            }
        }
        return if $dirs[0]{done} && $dirs[1]{done};
        my ($r, $w) = IO::Select->select($rs, $ws, undef, $timeout);
        next unless defined $r || defined $w;    # timeout or EINTR
        my %readable = map { fileno($_) => 1 } @{ $r || [] };
        my %writable = map { fileno($_) => 1 } @{ $w || [] };
        for my $d (@dirs) {
            if (!$d->{eof} && $readable{ fileno($d->{from}) }) {
                my $n = sysread($d->{from}, my $buf, 65536);
                if (defined $n && $n > 0) {
                    push @{ $d->{q} }, [time + $delay, $buf];
                } elsif (defined $n) {
                    $d->{eof} = 1;
                } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                    return;    # reset: closing both sockets passes it on
                }
            }
            if (@{ $d->{q} } && $writable{ fileno($d->{to}) } && $d->{q}[0][0] <= time) {
                my $n = syswrite($d->{to}, $d->{q}[0][1]);
                if (defined $n) {
                    substr($d->{q}[0][1], 0, $n, '');
                    shift @{ $d->{q} } if length($d->{q}[0][1]) == 0;
                } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                    return;
                }
            }
        }
    }
}
