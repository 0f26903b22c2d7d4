"""Dialects: turn a Mount's parameters into typed objects (`MountObject`s to fetch,
`TemplateObject`s to render from them).

The dialect is chosen by the provider name (the socket the SPC points at), so an
existing `provider: vault` or `provider: aws` SecretProviderClass keeps its meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from csiprovider.model import SpcObject
from csiprovider.request import MountParams

Dialect = Callable[[MountParams], Sequence[SpcObject]]
