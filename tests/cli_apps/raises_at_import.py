"""A module whose import fails."""
raise RuntimeError("boom at import (test)")
