"""The C{twistd dht} plugin: one lazy line; L{twisted_dht.tap} is imported only when used."""

from twisted.application.service import ServiceMaker

dht = ServiceMaker(
    "twisted_dht", "twisted_dht.tap", "A BitTorrent Mainline DHT node (BEP 5)", "dht"
)
