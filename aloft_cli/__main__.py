"""`python -m aloft_cli` runs the `aloft` command."""
from .main import main

main()
