"""A libtorrent 2.1 DHT node on 127.0.0.1 for the load benchmark (benchmarks/run.py starts it).

    python benchmarks/servers/libtorrent_server.py --port P

No bootstrap nodes (never the public routers), every non-loopback address blocked by an
ip_filter, and the DHT's rate limits raised out of the way (dht_upload_rate_limit,
dht_block_ratelimit, ...): the benchmark measures the hot path, not the limiter. Prints
``ready PORT`` when listening; exits when stdin closes.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import libtorrent as lt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    settings = {
        "enable_dht": True,
        "listen_interfaces": f"127.0.0.1:{options.port}",
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "apply_filter_to_dht": True,
        "alert_mask": 0,
        "dht_upload_rate_limit": 100_000_000,
        "dht_block_ratelimit": 1_000_000,
        "dht_block_timeout": 0,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_max_peers": 5000,
        "dht_max_torrents": 20000,
        "dht_max_peers_reply": 100,
    }
    ipFilter = lt.ip_filter()
    ipFilter.add_rule("0.0.0.0", "255.255.255.255", 1)
    ipFilter.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    ipFilter.add_rule("127.0.0.0", "127.255.255.255", 0)
    params = lt.session_params()
    params.settings = settings
    params.ip_filter = ipFilter
    session = lt.session(params)
    deadline = time.monotonic() + 10
    while not session.is_dht_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the DHT socket is bound shortly after
    print(f"ready {options.port} dht={session.is_dht_running()}", flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait(30 * 60)
    del session


if __name__ == "__main__":
    main()
