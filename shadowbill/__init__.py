"""shadowbill: shadow-bill a subscription billing migration, cent by cent."""

from shadowbill.errors import ShadowbillError

__all__ = ["ShadowbillError", "__version__"]
__version__ = "0.1.0"
