using System;

namespace ClusterSql;

/// <summary>
/// How a provider package's explicit retry API (ClusterSql.MySql's <c>ExecuteTransactionAsync</c>) retries a whole unit
/// of work: at most <see cref="MaxAttempts"/> runs, waiting between them a random time between half and all of
/// <see cref="BaseDelay"/> × 2^(retry − 1), capped at <see cref="MaxDelay"/>, so that writers that collided do not collide
/// again in step.
/// </summary>
public sealed class ClusterRetryOptions
{
    /// <summary>The most runs of the unit of work, the first included. Default 10.</summary>
    public int MaxAttempts { get; set; } = 10;

    /// <summary>The delay before the first retry (then doubled per retry, with jitter). Default 5 ms.</summary>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>The longest delay between two runs. Default 1 s.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range; the message names it.</exception>
    public void Validate()
    {
        if (MaxAttempts < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, "At least one attempt is needed.");
        }

        ClusterOptions.RequirePositive(BaseDelay, nameof(BaseDelay));
        ClusterOptions.RequirePositive(MaxDelay, nameof(MaxDelay));
        if (MaxDelay < BaseDelay)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDelay), MaxDelay, $"{nameof(MaxDelay)} must not be less than {nameof(BaseDelay)} ({BaseDelay}).");
        }
    }

    /// <summary>The wait before retry number <paramref name="retry"/> (1 for the first), with jitter from <paramref name="random"/>.</summary>
    /// <param name="retry">The retry's number, from 1.</param>
    /// <param name="random">The source of jitter.</param>
    /// <returns>The delay.</returns>
    public TimeSpan DelayBefore(int retry, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var doubling = Math.Clamp(retry - 1, 0, 30);
        var ceiling = Math.Min(BaseDelay.TotalMilliseconds * (1L << doubling), MaxDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(ceiling * (0.5 + (0.5 * random.NextDouble())));
    }
}
