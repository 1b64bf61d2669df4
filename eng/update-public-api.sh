#!/usr/bin/env bash
# Adds every public symbol that the PublicApiAnalyzers report as undeclared (RS0016) to the project's
# PublicAPI.Unshipped.txt, so that a deliberate API change is one command and a reviewed diff.
set -euo pipefail
project=${1:?usage: eng/update-public-api.sh path/to/Project.csproj}
dir=$(dirname "$project")
out=$(dotnet build "$project" --no-incremental -p:TreatWarningsAsErrors=false 2>&1 || true)
grep -o "RS0016: Symbol '[^']*'" <<<"$out" | sed "s/^RS0016: Symbol '//; s/'$//" | sort -u > "$dir/.api.new" || true
cat "$dir/PublicAPI.Unshipped.txt" "$dir/.api.new" | grep -v '^#nullable enable$' | sed '/^$/d' | sort -u > "$dir/.api.all"
{ echo '#nullable enable'; cat "$dir/.api.all"; } > "$dir/PublicAPI.Unshipped.txt"
rm -f "$dir/.api.new" "$dir/.api.all"
echo "$(grep -c . "$dir/PublicAPI.Unshipped.txt") lines in $dir/PublicAPI.Unshipped.txt"
