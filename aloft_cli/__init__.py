"""`aloft`: the command line on aloft_sdk (entry point `aloft_cli.main:main`)."""
