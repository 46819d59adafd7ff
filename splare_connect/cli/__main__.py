"""``python -m splare_connect.cli``."""

from splare_connect.cli import main

main()
