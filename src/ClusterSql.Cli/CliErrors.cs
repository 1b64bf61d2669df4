using System;
using System.Text.RegularExpressions;

namespace ClusterSql.Cli;

/// <summary>How the tool reports a failure of its own (not the cluster's verdict).</summary>
internal static partial class CliErrors
{
    /// <summary>EX_SOFTWARE (sysexits.h): the tool failed; 0, 1 and 2 stay the cluster's verdict, 64 a usage error.</summary>
    public const int InternalError = 70;

    /// <summary>
    /// The exception's type and message, one line, with every given secret (the connection strings in use) and any
    /// password=... fragment removed: a provider's message may quote the connection string it was given.
    /// </summary>
    public static string Sanitize(Exception error, params string?[] secrets)
    {
        var message = error.Message;
        foreach (var secret in secrets)
        {
            if (!string.IsNullOrEmpty(secret))
            {
                message = message.Replace(secret, "[connection string]", StringComparison.Ordinal);
            }
        }

        message = PasswordPattern().Replace(message, "$1=***");
        message = message.ReplaceLineEndings(" ");
        return $"unexpected error ({error.GetType().Name}): {message}";
    }

    [GeneratedRegex(@"(?i)\b(password|pwd)\s*=\s*[^;""'\s]*")]
    private static partial Regex PasswordPattern();
}
