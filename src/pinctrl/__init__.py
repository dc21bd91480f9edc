"""pinctrl-daemon: OVN's pinctrl as a standalone two-thread daemon."""
import warnings

# python-ovs's poller imports eventlet (os-ken's dependency) only to check
# whether select is monkey-patched; we never patch, so hide its deprecation
# banner.
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

__version__ = "0.1.0"
