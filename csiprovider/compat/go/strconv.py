"""Go's strconv.ParseBool: vault-csi-provider and ASCP parse their boolean parameters
(`vaultSkipTLSVerify`, `usePodIdentity`) with it, so "1", "t" and "TRUE" are true and
"yes" is an error."""

from __future__ import annotations

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(text: str) -> bool:
    """True or False as ParseBool answers; ValueError with Go's message otherwise."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')
