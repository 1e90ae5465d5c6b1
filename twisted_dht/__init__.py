"""twisted_dht: a BitTorrent Mainline DHT node (BEP 5) for Twisted."""
