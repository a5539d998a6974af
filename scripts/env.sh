# Sourced by the scripts that run tests and notebooks: points GROWLIB_TINYSTORIES_SAMPLE at the
# course's TinyStories sample when it sits beside the repository (../shared/data/) and the
# variable is not already set. The library itself never looks outside the repository.
_sample="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/data/tinystories-valid-sample.txt"
if [ -z "${GROWLIB_TINYSTORIES_SAMPLE:-}" ] && [ -f "$_sample" ]; then
  export GROWLIB_TINYSTORIES_SAMPLE="$_sample"
fi
unset _sample
