"""C{python -m twisted_dht}: see L{twisted_dht.cli}."""

from twisted_dht.cli import main

if __name__ == "__main__":
    main()
