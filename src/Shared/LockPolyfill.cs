#if !NET9_0_OR_GREATER
namespace ClusterSql;

/// <summary>
/// net8.0 has no <c>System.Threading.Lock</c>. This type, found first in the enclosing namespace, stands in for it
/// there: <c>lock</c> on a plain object takes the monitor, as every <c>lock</c> did before .NET 9, so the same source
/// builds for both targets. (It cannot be named System.Threading.Lock: the compiler would then expect EnterScope.)
/// </summary>
internal sealed class Lock
{
}
#endif
