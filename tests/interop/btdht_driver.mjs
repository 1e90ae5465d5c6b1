// A bittorrent-dht (webtorrent) node driven over stdin/stdout, one JSON object per line.
//
// Commands (an optional "id" is echoed in every reply to that command):
//   {"cmd":"start","host":"127.0.0.1","port":P,"bootstrap":["127.0.0.1:Q", ...],"verify":bool}
//       -> {"event":"listening","port":P,"nodeId":hex}, later {"event":"ready"}
//       ("verify": true gives the node tweetnacl's ed25519 verify, which BEP 44 mutable items
//       need: without it a mutable get finds nothing and a mutable put gets error 400)
//   {"cmd":"announce","infoHash":hex,"port":N} -> {"event":"announced",...} or {"event":"error"}
//   {"cmd":"lookup","infoHash":hex} -> {"event":"peer","host":..,"port":..}...
//       then {"event":"lookupDone","count":..,"visited":..}
//   {"cmd":"addNode","host":..,"port":..} -> {"event":"nodeAdded","id":hex,...} (after a ping)
//   {"cmd":"nodes"} -> {"event":"nodes","nodes":[{"id":hex,"host":..,"port":..}, ...]}
//   {"cmd":"put","v":hex of the bencoded value, ["seed":hex 32 bytes,"seq":N,"salt":hex,"cas":N]}
//       -> {"event":"put","target":hex,"nodes":N[,"k":hex,"seq":N,"sig":hex]} (BEP 44; mutable
//       with "seed": signed with tweetnacl) or {"event":"error","code":..}
//   {"cmd":"get","target":hex[,"salt":hex]} -> {"event":"got","item":null or {"v":hex of the
//       bencoded value,"k":hex,"seq":N,"sig":hex}} (a network lookup: never its own store)
//   {"cmd":"stop"} -> {"event":"stopped"}, then the process exits
// Unsolicited: {"event":"query","q":..,"from":"host:port","a":{..hex..}} for every incoming
// query, {"event":"warning","message":..}, {"event":"fatal","message":..}.
//
// Loopback only: "bootstrap" must be given (an empty list means no bootstrap at all, never the
// public routers), and listen() is called in the constructor's tick so that the first query
// (sent on nextTick) does not bind 0.0.0.0. The process exits when stdin closes, on "stop", and
// after BTDHT_DRIVER_MAX_SECONDS (default 120) whatever happens.
import { createInterface } from 'node:readline'

// Resolved from the node_modules folder beside this file (npm install in tests/interop).
import DHT from 'bittorrent-dht'
import bencode from 'bencode'

// tweetnacl (pure JavaScript ed25519) is loaded only if installed: without it the node runs,
// but cannot verify or sign BEP 44 mutable items.
let nacl = null
try {
  nacl = (await import('tweetnacl')).default
} catch (err) {
  nacl = null
}

function verify (sig, message, publicKey) {
  try {
    return nacl.sign.detached.verify(Uint8Array.from(message), Uint8Array.from(sig), Uint8Array.from(publicKey))
  } catch (err) {
    return false
  }
}

const maxSeconds = Number(process.env.BTDHT_DRIVER_MAX_SECONDS || 120)
setTimeout(() => {
  send({ event: 'fatal', message: `hard cap of ${maxSeconds} s reached` })
  process.exit(3)
}, maxSeconds * 1000).unref()

let dht = null
let stopping = false

function send (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function reply (cmd, obj) {
  if (cmd.id !== undefined) obj.id = cmd.id
  send(obj)
}

function fail (cmd, message, code) {
  const obj = { event: 'error', cmd: cmd.cmd, message: String(message) }
  if (code !== undefined) obj.code = code
  reply(cmd, obj)
}

function hex (value) {
  return Buffer.from(value).toString('hex')
}

function toJSONValue (value) {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value).toString('hex')
  if (Array.isArray(value)) return value.map(toJSONValue)
  if (value !== null && typeof value === 'object') {
    const out = {}
    for (const [k, v] of Object.entries(value)) out[k] = toJSONValue(v)
    return out
  }
  return value
}

function parseHostPort (entry) {
  if (typeof entry === 'string') {
    const i = entry.lastIndexOf(':')
    return { host: entry.slice(0, i), port: Number(entry.slice(i + 1)) }
  }
  return { host: entry.host, port: Number(entry.port) }
}

function shutdown (code) {
  if (stopping) return
  stopping = true
  const timer = setTimeout(() => process.exit(code), 2000)
  timer.unref()
  if (!dht) process.exit(code)
  dht.destroy(() => {
    send({ event: 'stopped' })
    process.exit(code)
  })
}

const handlers = {
  start (cmd) {
    if (dht) return fail(cmd, 'already started')
    if (!Array.isArray(cmd.bootstrap)) return fail(cmd, 'bootstrap must be a list (may be empty)')
    const bootstrap = cmd.bootstrap.map(parseHostPort)
    const host = cmd.host || '127.0.0.1'
    const options = { bootstrap: bootstrap.length ? bootstrap : false }
    if (cmd.verify) {
      if (!nacl) return fail(cmd, 'verify needs tweetnacl (npm install in tests/interop)')
      options.verify = verify
    }
    dht = new DHT(options)
    dht._rpc.on('query', (query, peer) => {
      send({
        event: 'query',
        q: query.q ? Buffer.from(query.q).toString() : null,
        from: `${peer.address}:${peer.port}`,
        a: toJSONValue(query.a || {})
      })
    })
    dht.on('warning', (err) => send({ event: 'warning', message: String(err && err.message) }))
    dht.on('ready', () => send({ event: 'ready' }))
    dht.on('error', (err) => {
      if (!dht.listening) return fail(cmd, err.message)
      send({ event: 'fatal', message: String(err && err.message) })
    })
    dht.once('listening', () => {
      reply(cmd, {
        event: 'listening',
        host: dht.address().address,
        port: dht.address().port,
        nodeId: dht.nodeId.toString('hex')
      })
    })
    dht.listen(Number(cmd.port || 0), host)
  },

  announce (cmd) {
    dht.announce(cmd.infoHash, Number(cmd.port), (err, hits) => {
      if (err) return fail(cmd, err.message)
      reply(cmd, { event: 'announced', infoHash: cmd.infoHash, port: cmd.port, nodes: hits })
    })
  },

  lookup (cmd) {
    const wanted = String(cmd.infoHash).toLowerCase()
    const seen = new Set()
    const onpeer = (peer, infoHash) => {
      if (Buffer.from(infoHash).toString('hex') !== wanted) return
      const key = `${peer.host}:${peer.port}`
      if (seen.has(key)) return
      seen.add(key)
      reply(cmd, { event: 'peer', infoHash: wanted, host: peer.host, port: peer.port })
    }
    dht.on('peer', onpeer)
    dht.lookup(wanted, (err, visited) => {
      // Peers from the local store are emitted on nextTick: let them through first.
      setImmediate(() => {
        dht.removeListener('peer', onpeer)
        if (err) return fail(cmd, err.message)
        reply(cmd, { event: 'lookupDone', infoHash: wanted, count: seen.size, visited })
      })
    })
  },

  addNode (cmd) {
    const node = { host: cmd.host, port: Number(cmd.port) }
    dht._sendPing(node, (err, found) => {
      if (err) return fail(cmd, err.message)
      dht.addNode(found)
      reply(cmd, {
        event: 'nodeAdded',
        nodeId: found.id.toString('hex'),
        host: found.host,
        port: found.port
      })
    })
  },

  nodes (cmd) {
    const nodes = dht._rpc.nodes.toArray().map((n) => ({
      id: Buffer.from(n.id).toString('hex'),
      host: n.host,
      port: n.port
    }))
    reply(cmd, { event: 'nodes', nodes })
  },

  put (cmd) {
    const value = bencode.decode(Buffer.from(cmd.v, 'hex'))
    // A byte string as a Buffer (what bittorrent-dht expects); other values as decoded.
    const opts = { v: value instanceof Uint8Array ? Buffer.from(value) : value }
    let sig = null
    if (cmd.seed !== undefined) {
      if (!nacl) return fail(cmd, 'a mutable put needs tweetnacl (npm install in tests/interop)')
      const keys = nacl.sign.keyPair.fromSeed(Uint8Array.from(Buffer.from(cmd.seed, 'hex')))
      opts.k = Buffer.from(keys.publicKey)
      opts.seq = Number(cmd.seq)
      opts.sign = (buf) => {
        sig = Buffer.from(nacl.sign.detached(Uint8Array.from(buf), keys.secretKey))
        return sig
      }
      if (cmd.salt) opts.salt = Buffer.from(cmd.salt, 'hex')
      if (cmd.cas !== undefined && cmd.cas !== null) opts.cas = Number(cmd.cas)
    }
    dht.put(opts, (err, key, n) => {
      if (err) return fail(cmd, err.message, err.code)
      const obj = { event: 'put', target: hex(key), nodes: n }
      if (opts.k) Object.assign(obj, { k: hex(opts.k), seq: opts.seq, sig: hex(sig) })
      reply(cmd, obj)
    })
  },

  get (cmd) {
    const opts = { cache: false }
    if (cmd.salt) opts.salt = Buffer.from(cmd.salt, 'hex')
    dht.get(cmd.target, opts, (err, found) => {
      if (err) return fail(cmd, err.message, err.code)
      if (!found) return reply(cmd, { event: 'got', item: null })
      const item = { v: hex(bencode.encode(found.v)) }
      if (found.k) Object.assign(item, { k: hex(found.k), seq: found.seq, sig: hex(found.sig) })
      reply(cmd, { event: 'got', item })
    })
  },

  stop (cmd) {
    shutdown(0)
  }
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  if (!line.trim()) return
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    return send({ event: 'error', cmd: null, message: `bad JSON: ${err.message}` })
  }
  const handler = handlers[cmd.cmd]
  if (!handler) return fail(cmd, `unknown command ${cmd.cmd}`)
  if (cmd.cmd !== 'start' && cmd.cmd !== 'stop' && !dht) return fail(cmd, 'not started')
  try {
    handler(cmd)
  } catch (err) {
    fail(cmd, err.message)
  }
})
lines.on('close', () => shutdown(0))
