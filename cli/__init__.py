"""custody's command-line interface (Click).  Installed as the package ``custody_cli``."""
