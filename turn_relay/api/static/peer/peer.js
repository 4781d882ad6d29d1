// The browser party of a turnkit peer test. The protocol and the data-channel wire format are
// the CLI party's (rtccheck/peer/party.py and measure.py): read those docstrings first.
"use strict";
// One closure: the check page loads this file next to its own script (same global scope).
(() => {

const PINGS = 50;
const PING_INTERVAL_MS = 10;
const STRAGGLER_WAIT_MS = 500;
const BULK_MS = 300;
const BULK_BUFFER_LIMIT = 64 * 1024;
const LEG_TIMEOUT_MS = 12000;
const REPORT_WAIT_MS = 3000;
const RESTART_PING_MS = 20;
const RESTART_PHASE_MS = 1000;
const RESTART_SETTLE_MS = 4000;
const RELAY_LEGS = ["relay-udp", "relay-tcp", "relay-tls"];

// On /peer/ this script runs the test at once. Embedded in another page (the check page's "test
// with another person") its <script> tag says data-ids="peer-": it then uses that page's
// elements with the prefix (peer-status, peer-verdict, ...), keeps its state on the element
// peer-box, and waits for window.turnkitPeer.run(token).
const ID_PREFIX = document.currentScript?.dataset.ids ?? "";
const EMBEDDED = ID_PREFIX !== "";
const $ = (id) => document.getElementById(ID_PREFIX + id);
const stateHolder = () => (EMBEDDED ? $("box") : document.body);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

function log(text) {
  $("log").textContent += `${new Date().toISOString()} ${text}\n`;
}

function setStatus(text, state) {
  $("status").textContent = text;
  if (state) stateHolder().dataset.state = state;
}

function withTimeout(ms, what, promise) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

function party() {
  return {
    kind: "browser",
    agent: navigator.userAgent,
    can_restart_ice: typeof RTCPeerConnection.prototype.restartIce === "function",
  };
}

// ---------------------------------------------------------------- signaling

class Queue {
  constructor() { this.items = []; this.waiters = []; this.ended = null; }
  put(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(item); else this.items.push(item);
  }
  end(reason) {
    this.ended = reason;
    for (const waiter of this.waiters.splice(0)) waiter.reject(new Error(reason));
  }
  next() {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.ended) return Promise.reject(new Error(this.ended));
    return new Promise((resolve, reject) => this.waiters.push({resolve, reject}));
  }
}

class Signaling {
  constructor(ws, joined) {
    this.ws = ws;
    this.joined = joined;
    this.control = new Queue();
    this.legs = new Map();
    ws.addEventListener("message", ({data}) => this.dispatch(data));
    ws.addEventListener("close", ({code, reason}) => {
      const why = `the rendezvous connection ended (${code}${reason ? ": " + reason : ""})`;
      this.control.end(why);
      for (const queue of this.legs.values()) queue.end(why);
    });
  }
  static join(token) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/rendezvous/${encodeURIComponent(token)}`);
    return new Promise((resolve, reject) => {
      ws.addEventListener("message", ({data}) => {
        const message = JSON.parse(data);
        if (message.type === "joined") resolve(new Signaling(ws, message));
        else reject(new Error(`${message.code}: ${message.message}`));
      }, {once: true});
      ws.addEventListener("close", ({code}) => reject(new Error(`closed (${code})`)), {once: true});
    });
  }
  get leader() { return this.joined.role === "leader"; }
  leg(name) {
    if (!this.legs.has(name)) this.legs.set(name, new Queue());
    return this.legs.get(name);
  }
  dispatch(data) {
    let message;
    try { message = JSON.parse(data); } catch { return; }
    // the leader runs each leg on its own; the follower serves every leg from one loop
    const routed = this.leader && ["offer", "answer", "candidate", "result"].includes(message.type);
    if (routed && typeof message.leg === "string") this.leg(message.leg).put(message);
    else this.control.put(message);
  }
  send(message) { this.ws.send(JSON.stringify(message)); }
}

async function roomToken() {
  const fragment = decodeURIComponent(location.hash.slice(1));
  if (fragment) return fragment;
  const form = $("code-form");
  form.hidden = false;
  setStatus("Enter the room code you were given.", "waiting-for-code");
  for (;;) {
    const code = await new Promise((resolve) => {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        resolve($("code").value.trim());
      }, {once: true});
    });
    const response = await fetch(`/rendezvous/code/${encodeURIComponent(code)}`);
    const body = await response.json();
    if (response.ok) { form.hidden = true; return body.token; }
    setStatus(`That code did not work: ${body.error}`);
  }
}

// ---------------------------------------------------------------- one leg's connection

function rtcConfiguration(joined, config) {
  const server = joined.ice_servers[0] || {};
  const iceServers = config.urls.map((url) => url.startsWith("turn")
    ? {urls: url, username: server.username, credential: server.credential}
    : {urls: url});
  return {iceServers, iceTransportPolicy: config.policy === "relay" ? "relay" : "all"};
}

function candidateView(stats, id) {
  const c = stats.get(id);
  return c ? {
    type: c.candidateType, protocol: c.protocol, relay_protocol: c.relayProtocol ?? null,
    address: c.address ?? null, port: c.port ?? null,
  } : null;
}

async function selectedPair(pc) {
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type !== "transport" || !report.selectedCandidatePairId) continue;
    const pair = stats.get(report.selectedCandidatePairId);
    return {local: candidateView(stats, pair.localCandidateId),
            remote: candidateView(stats, pair.remoteCandidateId)};
  }
  return null;
}

async function onSession(pc, localUfrag) {
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type === "transport" && report.selectedCandidatePairId &&
        report.iceLocalUsernameFragment === localUfrag) {
      const pair = stats.get(report.selectedCandidatePairId);
      return Boolean(pair && pair.state === "succeeded");
    }
  }
  return false;
}

function ufrag(sdp) {
  const match = /a=ice-ufrag:(\S+)/.exec(sdp || "");
  return match ? match[1] : null;
}

class Leg {
  constructor(sig, config) {
    this.sig = sig;
    this.config = config;
    this.pc = new RTCPeerConnection(rtcConfiguration(sig.joined, config));
    this.gathered = new Set();
    this.channels = {};
    this.offerSent = false;
    this.held = [];
    this.pc.addEventListener("icecandidate", ({candidate}) => {
      if (candidate && candidate.type) this.gathered.add(candidate.type);
      const message = {type: "candidate", leg: config.name,
                       candidate: candidate ? candidate.toJSON() : null};
      if (this.offerSent) sig.send(message); else this.held.push(message);
    });
  }
  described() {
    this.offerSent = true;
    for (const message of this.held.splice(0)) this.sig.send(message);
  }
  channelsOpen() {
    const open = (channel) => channel.readyState === "open" ? Promise.resolve()
      : new Promise((resolve) => channel.addEventListener("open", resolve, {once: true}));
    return Promise.all([open(this.channels.probe), open(this.channels.control)]);
  }
  close() { this.pc.close(); }
}

// ---------------------------------------------------------------- measuring

class Pinger {
  constructor(channel) {
    this.channel = channel;
    this.sent = new Map();
    this.rtts = new Map();
    channel.addEventListener("message", ({data}) => {
      if (typeof data !== "string" || !data.startsWith("pong ")) return;
      const seq = Number(data.split(" ")[1]);
      if (this.sent.has(seq) && !this.rtts.has(seq)) this.rtts.set(seq, now() - this.sent.get(seq));
    });
  }
  ping() {
    const seq = this.sent.size;
    const at = now();
    this.sent.set(seq, at);
    try { this.channel.send(`ping ${seq} ${at.toFixed(3)}`); } catch { /* closing: counted lost */ }
    return seq;
  }
  between(from, to) {
    const rtts = [];
    for (let seq = from; seq < to; seq++) if (this.rtts.has(seq)) rtts.push(this.rtts.get(seq));
    return {sent: to - from, rtts};
  }
}

function quantile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 1) return sorted[0];
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.min(low + 1, sorted.length - 1);
  return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
}

function figures({sent, rtts}) {
  const round = (x) => x === null ? null : Math.round(x * 1000) / 1000;
  return {
    rtt_p50_ms: round(quantile(rtts, 0.5)), rtt_p95_ms: round(quantile(rtts, 0.95)),
    loss_pct: sent ? round(100 * (sent - rtts.length) / sent) : null,
    packets_sent: sent, packets_received: rtts.length,
  };
}

async function burst(probe, control) {
  const counted = new Promise((resolve) => {
    const listener = ({data}) => {
      if (typeof data === "string" && data.startsWith("bulk-count ")) {
        control.removeEventListener("message", listener);
        resolve(data);
      }
    };
    control.addEventListener("message", listener);
  });
  const pad = "x".repeat(1000);
  const deadline = now() + BULK_MS;
  let seq = 0;
  while (now() < deadline) {
    if (probe.bufferedAmount < BULK_BUFFER_LIMIT) probe.send(`bulk ${seq++} ${pad}`);
    else await sleep(2);
    if (seq % 16 === 0) await sleep(0);
  }
  await sleep(300);
  control.send("bulk-end");
  const [, count, bytes, span] = (await withTimeout(3000, "burst count", counted)).split(" ");
  return Number(count) > 1 && Number(span) > 0 ? Number(bytes) * 8 / (Number(span) * 1000) : null;
}

async function measure(leg) {
  const pinger = new Pinger(leg.channels.probe);
  for (let i = 0; i < PINGS; i++) { pinger.ping(); await sleep(PING_INTERVAL_MS); }
  await sleep(STRAGGLER_WAIT_MS);
  const result = figures(pinger.between(0, pinger.sent.size));
  try {
    const mbps = await burst(leg.channels.probe, leg.channels.control);
    result.throughput_mbps = mbps === null ? null : Math.round(mbps * 1000) / 1000;
  } catch (error) {
    result.error = String(error.message || error);
  }
  return result;
}

function attachEcho(channel, counts) {
  channel.addEventListener("message", ({data}) => {
    if (typeof data !== "string") return;
    try {
      if (data.startsWith("ping ")) channel.send("pong " + data.slice(5));
      else if (data.startsWith("bulk ")) {
        const at = now();
        counts.first = counts.first || at;
        counts.last = at;
        counts.count += 1;
        counts.bytes += data.length;
      } else if (data === "bulk-end") {
        channel.send(`bulk-count ${counts.count} ${counts.bytes} ${(counts.last - counts.first).toFixed(3)}`);
      }
    } catch { /* the channel is closing */ }
  });
}

// ---------------------------------------------------------------- leader

class Mutex {
  constructor() { this.tail = Promise.resolve(); }
  run(task) {
    const result = this.tail.then(task);
    this.tail = result.catch(() => {});
    return result;
  }
}

function planLegs(joined) {
  const legs = joined.legs || {};
  const turnUdp = legs["relay-udp"] ? [legs["relay-udp"]] : [];
  const relayProtocol = (url) => url.startsWith("turns:") ? "tls"
    : url.endsWith("transport=tcp") ? "tcp" : "udp";
  const planned = [{name: "all", policy: "all", urls: [...(joined.stun_urls || []), ...turnUdp]}];
  for (const name of RELAY_LEGS) {
    if (legs[name]) planned.push({name, policy: "relay", urls: [legs[name]],
                                  relayProtocol: relayProtocol(legs[name])});
  }
  return planned;
}

async function connectLeader(leg, inbox) {
  const name = leg.config.name;
  leg.channels.probe = leg.pc.createDataChannel("probe", {ordered: false, maxRetransmits: 0});
  leg.channels.control = leg.pc.createDataChannel("control");
  await leg.pc.setLocalDescription();
  leg.sig.send({type: "offer", leg: name, sdp: leg.pc.localDescription.sdp,
                policy: leg.config.policy, urls: leg.config.urls});
  leg.described();
  let answer;
  do { answer = await inbox.next(); } while (answer.type !== "answer");
  await leg.pc.setRemoteDescription({type: "answer", sdp: answer.sdp});
  leg.pump = pumpCandidates(leg, inbox);
  await leg.channelsOpen();
}

async function pumpCandidates(leg, inbox) {
  leg.report = new Promise((resolve) => { leg.reported = resolve; });
  leg.answers = new Queue();
  try {
    for (;;) {
      const message = await inbox.next();
      if (message.type === "candidate") {
        await leg.pc.addIceCandidate(message.candidate || null).catch(() => {});
      } else if (message.type === "result") leg.reported(message);
      else if (message.type === "answer") leg.answers.put(message);
    }
  } catch { /* the rendezvous ended */ }
}

async function leadLeg(sig, config, mutex, body) {
  const leg = new Leg(sig, config);
  const inbox = sig.leg(config.name);
  const result = {leg: config.name, url: config.policy === "relay" ? config.urls[0] : null,
                  status: "failed"};
  const started = now();
  try {
    await withTimeout(LEG_TIMEOUT_MS, `leg ${config.name}`, connectLeader(leg, inbox));
    result.connect_ms = Math.round((now() - started) * 10) / 10;
    result.pair = await selectedPair(leg.pc);
    Object.assign(result, await mutex.run(() => body(leg, result)));
    result.status = result.packets_received ? "connected" : "failed";
    if (!result.packets_received) result.error = result.error || "no data";
  } catch (error) {
    result.error = String(error.message || error);
  } finally {
    result.gathered = {leader: [...leg.gathered]};
    if (!leg.pump) leg.pump = pumpCandidates(leg, inbox);
    try { sig.send({type: "result", leg: config.name, done: true}); } catch { /* closed */ }
    const report = await Promise.race([leg.report, sleep(REPORT_WAIT_MS)]);
    if (report) result.gathered.follower = report.gathered || [];
    leg.close();
  }
  log(`leg ${config.name}: ${result.status} ${result.error || ""}`);
  return result;
}

async function restartBody(leg, result) {
  // pings all along; restartIce() after the first phase; phases by send time
  const pinger = new Pinger(leg.channels.probe);
  const oldUfrag = ufrag(leg.pc.localDescription.sdp);
  let running = true;
  const pinging = (async () => {
    while (running) { pinger.ping(); await sleep(RESTART_PING_MS); }
  })();
  await sleep(RESTART_PHASE_MS);
  const beforeEnd = pinger.sent.size;
  const restartStarted = now();
  leg.pc.restartIce();
  await leg.pc.setLocalDescription();
  leg.sig.send({type: "offer", leg: leg.config.name, sdp: leg.pc.localDescription.sdp,
                policy: leg.config.policy, urls: leg.config.urls});
  const answer = await withTimeout(RESTART_SETTLE_MS, "restart answer", leg.answers.next());
  await leg.pc.setRemoteDescription({type: "answer", sdp: answer.sdp});
  // the restart is done when the transport runs on the new ICE session (its new ufrag) over a
  // selected pair; iceConnectionState stays "connected" throughout, so it cannot tell
  const newUfrag = ufrag(leg.pc.localDescription.sdp);
  let newSession = false;
  while (!newSession && now() - restartStarted < RESTART_SETTLE_MS) {
    newSession = await onSession(leg.pc, newUfrag);
    if (!newSession) await sleep(20);
  }
  const restartMs = now() - restartStarted;
  const duringEnd = pinger.sent.size;
  await sleep(RESTART_PHASE_MS);
  running = false;
  await pinging;
  await sleep(STRAGGLER_WAIT_MS);
  const afterEnd = pinger.sent.size;
  const all = figures(pinger.between(0, afterEnd));
  const after = figures(pinger.between(duringEnd, afterEnd));
  const survived = leg.channels.probe.readyState === "open" &&
    leg.channels.control.readyState === "open" && after.packets_received > 0;
  result.pair = await selectedPair(leg.pc);
  let throughput = null;
  try { throughput = await burst(leg.channels.probe, leg.channels.control); } catch { /* none */ }
  return {
    ...all, throughput_mbps: throughput === null ? null : Math.round(throughput * 1000) / 1000,
    restart: {
      channel_survived: survived,
      new_session_selected: newSession,
      credentials_changed: ufrag(leg.pc.localDescription.sdp) !== oldUfrag,
      restart_ms: Math.round(restartMs * 10) / 10,
      before: figures(pinger.between(0, beforeEnd)),
      during: figures(pinger.between(beforeEnd, duringEnd)),
      after,
    },
  };
}

async function lead(sig) {
  let follower = null;
  setStatus("Waiting for the other person to open their link...", "waiting");
  while (!follower) {
    const message = await sig.control.next();
    if (message.type === "peer-joined") sig.send({type: "ready", party: party()});
    else if (message.type === "ready") follower = message.party || {};
    else if (message.type === "peer-left") throw new Error("the other party left");
  }
  setStatus("Testing: direct, then the relay over each transport...", "testing");
  const mutex = new Mutex();
  const legs = await Promise.all(planLegs(sig.joined).map((config) =>
    leadLeg(sig, config, mutex, (leg) => measure(leg))));
  const udp = sig.joined.legs && sig.joined.legs["relay-udp"];
  if (party().can_restart_ice && follower.can_restart_ice && udp) {
    setStatus("Testing an ICE restart in the middle of a call...", "testing");
    const config = {name: "ice-restart", policy: "relay", urls: [udp]};
    legs.push(await leadLeg(sig, config, mutex, restartBody));
  } else {
    legs.push({leg: "ice-restart", status: "skipped",
               error: "the other party cannot restart ICE (aiortc, the CLI party, has no restartIce)"});
  }
  sig.send({type: "result", final: true, legs, parties: {leader: party(), follower}});
}

// ---------------------------------------------------------------- follower

async function follow(sig) {
  sig.send({type: "ready", party: party()});
  setStatus("Testing with the other person...", "testing");
  const legs = new Map();
  for (;;) {
    const message = await sig.control.next();
    if (message.type === "verdict" || message.type === "peer-left") return message;
    if (typeof message.leg !== "string") continue;
    followerMessage(sig, legs, message).catch((error) => log(`leg ${message.leg}: ${error}`));
  }
}

async function followerMessage(sig, legs, message) {
  let entry = legs.get(message.leg);
  if (message.type === "offer") {
    if (!entry) {
      const config = {name: message.leg, policy: message.policy, urls: message.urls || []};
      entry = {leg: new Leg(sig, config), pending: [], answered: false};
      const counts = {count: 0, bytes: 0, first: 0, last: 0};
      entry.leg.pc.addEventListener("datachannel", ({channel}) => attachEcho(channel, counts));
      legs.set(message.leg, entry);
    }
    entry.answered = false;
    await entry.leg.pc.setRemoteDescription({type: "offer", sdp: message.sdp});
    await entry.leg.pc.setLocalDescription();
    sig.send({type: "answer", leg: message.leg, sdp: entry.leg.pc.localDescription.sdp});
    entry.leg.described();
    entry.answered = true;
    for (const candidate of entry.pending.splice(0)) {
      await entry.leg.pc.addIceCandidate(candidate).catch(() => {});
    }
  } else if (message.type === "candidate" && entry) {
    if (entry.answered) await entry.leg.pc.addIceCandidate(message.candidate || null).catch(() => {});
    else entry.pending.push(message.candidate || null);
  } else if (message.type === "result" && message.done && entry) {
    sig.send({type: "result", leg: message.leg, side: "follower",
              gathered: [...entry.leg.gathered], pair: await selectedPair(entry.leg.pc)});
    entry.leg.close();
  }
}

// ---------------------------------------------------------------- page

function showVerdict(message) {
  const verdict = $("verdict");
  verdict.hidden = false;
  verdict.textContent = message.verdict;
  for (const result of (message.report && message.report.results) || []) {
    const item = document.createElement("li");
    item.textContent = `[${result.status}] ${result.summary}`;
    $("legs").append(item);
  }
  const stored = $("stored");
  stored.hidden = false;
  stored.textContent = message.result_id
    ? `Result ID ${message.result_id}: give it to support.`
    : `Not stored: ${message.store_error}`;
  $("report").textContent = JSON.stringify(message.report, null, 1);
  setStatus("Done.", message.status === "pass" ? "pass" : "fail");
  if (!EMBEDDED) document.title = `verdict: ${message.verdict}`;
}

async function verdictFrom(sig) {
  for (;;) {
    const message = await withTimeout(15000, "the verdict", sig.control.next());
    if (message.type === "verdict") return message;
  }
}

async function main(token) {
  let sig;
  try {
    sig = await Signaling.join(token ?? await roomToken());
    log(`joined room ${sig.joined.room} as ${sig.joined.role}`);
    let message;
    if (sig.leader) {
      await lead(sig);
      message = await verdictFrom(sig);
    } else {
      message = await follow(sig);
    }
    if (message.type === "peer-left") throw new Error("the other party left in the middle of the test");
    showVerdict(message);
  } catch (error) {
    setStatus(`The test stopped: ${error.message || error}`, "error");
    log(String(error.stack || error));
  } finally {
    if (sig) sig.ws.close();
  }
}

if (EMBEDDED) window.turnkitPeer = Object.freeze({ run: (token) => main(token) });
else main();
})();
