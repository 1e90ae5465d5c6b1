// webtorrent bittorrent-dht 11 on 127.0.0.1 for the load benchmark (benchmarks/run.py starts it).
//
//     node benchmarks/servers/btdht_server.mjs PORT [ROUTING]
//
// Resolves bittorrent-dht from tests/interop/node_modules (npm install there). No bootstrap
// (an empty list: never the public routers); the routing table gets ROUTING (default 20)
// nodes at public-looking addresses through addNode (no ping). Only 20: bittorrent-dht
// answers find_node (and get_peers without peers) with its *whole* table, and with the
// ~150 nodes that 2000 inserts leave its replies would be ~4 kB; 20 nodes (one bucket, its
// k) make them ~520 B, comparable with the 8 nodes twisted_dht and libtorrent send.
// The peer cap is raised above the 10,000 default so that 200 x 50 peers fit. Prints
// "ready PORT" when listening; exits when stdin closes, or after 30 minutes.
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const modules = path.join(here, '..', '..', 'tests', 'interop', 'node_modules')
const { default: DHT } = await import(pathToFileURL(path.join(modules, 'bittorrent-dht', 'index.js')))

const port = Number(process.argv[2])
const routing = Number(process.argv[3] || 20)
const dht = new DHT({ bootstrap: false, maxPeers: 1000000 })
dht.listen(port, '127.0.0.1', () => {
  for (let i = 0; i < routing; i++) {
    const host = `${1 + i % 200}.${Math.floor(i / 200) % 250}.${i % 256}.${1 + (i * 7) % 254}`
    dht.addNode({ id: randomBytes(20), host, port: 6881 })
  }
  process.stdout.write(`ready ${port} table=${dht.toJSON().nodes.length}\n`)
})
dht.on('error', (err) => { process.stderr.write(`error ${err}\n`); process.exit(1) })
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
setTimeout(() => process.exit(3), 30 * 60 * 1000).unref()
