// The relay's check page. Plain JavaScript, no build step, no other host: everything it
// talks to is the relay (its API origin and its TURN/STUN listeners), plus the app's
// signaling URL when the signed link names one. It writes a report in the rtccheck JSON
// schema (source "browser") and uploads it to the relay.
"use strict";

const GATHER_TIMEOUT_MS = 10000;
const CONNECT_TIMEOUT_MS = 10000;
const PING_COUNT = 40;
const PING_INTERVAL_MS = 40;
const BURST_MS = 1000;
const BURST_MESSAGE_BYTES = 1000;
const WS_ROUND_TRIPS = 5;

const ICE_ERRORS = {
  701: "No answer from this server address over this transport (or the connection to it " +
       "failed). Often not fatal: another server or transport may still work.",
  300: "The server asked the browser to use another server (Try Alternate).",
  400: "The server could not read the request (Bad Request).",
  401: "The server refused the credentials (Unauthorized): the test's credentials may have " +
       "expired, or the relay's clock is wrong.",
  403: "The server refused the request (Forbidden).",
  437: "The server saw a mismatching allocation (often a reused port right after a failure).",
  438: "The server's nonce went stale; browsers retry this by themselves.",
  441: "The server refused the credentials (Wrong Credentials).",
  442: "The server does not offer this transport (Unsupported Transport Protocol).",
  486: "Too many allocations for this user (Allocation Quota Reached).",
  508: "The relay has no capacity left (Insufficient Capacity).",
};

// Every cause id this page reports, all from rtccheck's catalogue (rtccheck.causes.CauseId,
// docs/rtccheck-json.md): a stored report is read with the same schema. Results name causes
// only through these two tables (tests/checkpage/test_page_cause_ids.py keeps them in it).
const CAUSE = Object.freeze({
  websocketBlocked: "websocket-blocked",
  udpBlocked: "udp-blocked",
  symmetricNat: "symmetric-nat",
  udpNoAnswer: "udp-no-answer",
  tcpNoAnswer: "tcp-no-answer",
  relayDataLost: "relay-data-lost",
  noData: "no-data",
  packetLoss: "packet-loss",
  errorResponse: "error-response",
});

// A TURN error code from onicecandidateerror, as rtccheck names the same answer.
const CAUSE_OF_ERROR_CODE = Object.freeze({
  300: "try-alternate",
  400: "bad-request",
  401: "credentials-rejected",
  403: "forbidden",
  420: "unknown-attribute",
  437: "allocation-mismatch",
  438: "stale-nonce",
  440: "address-family-not-supported",
  441: "wrong-credentials",
  442: "unsupported-transport",
  486: "allocation-quota-reached",
  500: "server-error",
  508: "insufficient-capacity",
});

const token = location.pathname.split("/")[2] || "";
const base = `/check/${token}`;
const started = new Date();
const startedMs = performance.now();
const results = [];
const durations = {};

// ------------------------------------------------------------------ small helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (value, digits = 1) =>
  value === null || !Number.isFinite(value) ? null : Number(value.toFixed(digits));

function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function percentile(values, fraction) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

function explainIceError(code) {
  if (ICE_ERRORS[code]) return ICE_ERRORS[code];
  if (code >= 300 && code < 700) return `The server answered with error ${code}.`;
  return `Error ${code}.`;
}

function isPrivateAddress(address) {
  if (!address || address.endsWith(".local")) return false;  // mDNS names hide the address
  const v4 = address.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return a === 10 || a === 127 || (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254) || (a === 198 && (b === 18 || b === 19)) || a === 0;
  }
  const v6 = address.toLowerCase();
  return v6 === "::1" || v6.startsWith("fc") || v6.startsWith("fd") || v6.startsWith("fe80");
}

const shown = (address) => address ?? null;

// Private addresses (host candidates, related addresses) leave the page only when the user
// ticked the box; the report is redacted as a whole when it is built.
function redacted(value, share) {
  if (share) return value;
  if (typeof value === "string") return isPrivateAddress(value) ? "redacted" : value;
  if (Array.isArray(value)) return value.map((item) => redacted(item, share));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redacted(v, share)]));
  }
  return value;
}

function candidateFacts(candidate, url) {
  return {
    type: candidate.type, protocol: candidate.protocol,
    address: shown(candidate.address), port: candidate.port,
    related_address: shown(candidate.relatedAddress), related_port: candidate.relatedPort,
    relay_protocol: candidate.relayProtocol ?? null, url: url ?? null,
  };
}

function clientFacts() {
  const ua = navigator.userAgent;
  const brands = navigator.userAgentData?.brands ?? [];
  const brand = brands.find((b) => !/Not.?A.?Brand|Chromium/i.test(b.brand)) ??
    brands.find((b) => /Chromium/i.test(b.brand));
  const match = ua.match(/(Firefox|Edg|OPR|Chrome|Version)\/([\d.]+)/);
  const browser = brand?.brand ?? (match ? { Edg: "Edge", OPR: "Opera", Version: "Safari" }[
    match[1]] ?? match[1] : null);
  const os = navigator.userAgentData?.platform ||
    (/Windows/.test(ua) ? "Windows" : /Mac OS X/.test(ua) ? "macOS" : /Android/.test(ua) ?
      "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Linux/.test(ua) ? "Linux" : null);
  return { browser, browser_version: brand?.version ?? match?.[2] ?? null, os, user_agent: ua };
}

function addResult(check, target, status, summary, extra = {}) {
  const result = {
    check, target, status, summary,
    metrics: extra.metrics ?? {}, cause_id: extra.cause_id ?? null,
    cause: extra.cause ?? null, fix: extra.fix ?? null, details: extra.details ?? {},
    capabilities: [], see: null,
  };
  results.push(result);
  showRow(result);
  return result;
}

// ------------------------------------------------------------------ the page

function showRow(result) {
  const row = document.createElement("tr");
  const cells = [`${result.check} ${result.target === "-" ? "" : result.target}`,
    result.status, result.cause ? `${result.summary} ${result.cause}` : result.summary];
  cells.forEach((text, index) => {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (index === 1) cell.className = `status ${result.status}`;
    row.append(cell);
  });
  document.querySelector("#checks tbody").append(row);
}

function showVerdict(kind, text, status) {
  const box = document.getElementById("verdict-box");
  box.className = `verdict ${status}`;
  box.dataset.verdict = kind;
  document.getElementById("verdict").textContent = text;
}

function showResultId(id) {
  document.getElementById("result-id").textContent = `${id.slice(0, 4)}-${id.slice(4)}`;
  document.getElementById("result-line").hidden = false;
  document.body.dataset.reported = id;
}

// ------------------------------------------------------------------ WebSocket round trips

async function websocketRoundTrip(url, echoes) {
  const begin = performance.now();
  const socket = new WebSocket(url);
  try {
    await within(CONNECT_TIMEOUT_MS, new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error("the WebSocket connection failed"));
      socket.onclose = (e) => reject(new Error(`the connection closed (code ${e.code})`));
    }), "WebSocket open");
    const openMs = performance.now() - begin;
    const rtts = [];
    for (let i = 0; echoes && i < WS_ROUND_TRIPS; i++) {
      const sent = performance.now();
      const answer = new Promise((resolve) => { socket.onmessage = (m) => resolve(m.data); });
      socket.send(`ping ${i}`);
      const data = await within(3000, answer, "WebSocket echo");
      if (data !== `ping ${i}`) throw new Error(`the echo was ${JSON.stringify(data)}`);
      rtts.push(performance.now() - sent);
    }
    return { ok: true, openMs, rtts };
  } catch (error) {
    return { ok: false, error: String(error.message ?? error) };
  } finally {
    socket.onclose = null;
    socket.close();
  }
}

async function checkWebSockets(config) {
  const begin = performance.now();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const relayUrl = `${scheme}//${location.host}${base}/ws`;
  const relay = await websocketRoundTrip(relayUrl, true);
  if (relay.ok) {
    addResult("browser.websocket", "relay", "pass",
      `WebSocket round trip to the relay: ${round(percentile(relay.rtts, 0.5))} ms`,
      { metrics: { connect_ms: round(relay.openMs), rtt_p50_ms: round(percentile(relay.rtts, 0.5)) } });
  } else {
    addResult("browser.websocket", "relay", "fail", "No WebSocket round trip to the relay.", {
      cause_id: CAUSE.websocketBlocked, cause: relay.error,
      fix: "A proxy or firewall on this network may block WebSockets; ask its administrator.",
    });
  }
  let signaling = null;
  if (config.signaling) {
    signaling = await websocketRoundTrip(config.signaling, false);
    if (signaling.ok) {
      addResult("browser.websocket", config.signaling, "pass",
        "The app's signaling server accepted a WebSocket connection.",
        { metrics: { connect_ms: round(signaling.openMs) } });
    } else {
      addResult("browser.websocket", config.signaling, "fail",
        "The app's signaling server could not be reached over WebSocket.", {
          cause_id: CAUSE.websocketBlocked, cause: signaling.error,
          fix: "A proxy or firewall may block WebSockets; calls cannot start without signaling.",
        });
    }
  }
  durations.websocket = round((performance.now() - begin) / 1000, 3);
  return { relay: relay.ok, signaling: signaling ? signaling.ok : null };
}

// ------------------------------------------------------------------ gathering

async function gather(iceServers, policy) {
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: policy });
  const found = { candidates: [], errors: [], complete: false };
  const begin = performance.now();
  try {
    pc.createDataChannel("gather");
    const done = new Promise((resolve) => {
      pc.onicecandidate = (event) => {
        if (!event.candidate) { resolve(); return; }
        if (!event.candidate.candidate) return;
        found.candidates.push({ candidate: event.candidate, url: event.url ?? null,
          ms: performance.now() - begin });
      };
      pc.onicegatheringstatechange = () => {
        if (pc.iceGatheringState === "complete") resolve();
      };
    });
    pc.onicecandidateerror = (event) => {
      found.errors.push({ url: event.url ?? null, code: event.errorCode,
        text: event.errorText ?? "", address: shown(event.address) });
    };
    await pc.setLocalDescription(await pc.createOffer());
    await within(GATHER_TIMEOUT_MS, done, "gathering").then(
      () => { found.complete = true; }, () => {});
  } finally {
    pc.close();
  }
  return found;
}

function inferMapping(stun, found) {
  const srflx = found.candidates.filter((c) => c.candidate.type === "srflx");
  const failed = new Set(found.errors.filter((e) => e.code === 701).map((e) => e.url));
  const ports = new Set(srflx.map((c) => `${c.candidate.address}:${c.candidate.port}`));
  // Without a srflx candidate only a finished gathering without errors says the servers
  // answered (with the device's own address); an unfinished one says nothing came back.
  const answered = found.complete || srflx.length ? stun.filter((s) => !failed.has(s.url)) : [];
  if (!answered.length) return { mapping: "unknown", udp: false, servers_answered: 0 };
  // A srflx address that is one of the device's own (visible only where the browser does not
  // hide host addresses behind mDNS names) means there is no NAT on the way.
  const own = new Set(found.candidates.filter((c) => c.candidate.type === "host")
    .map((c) => c.candidate.address));
  if (srflx.length && srflx.every((c) => own.has(c.candidate.address))) {
    return { mapping: "no-nat", udp: true, servers_answered: answered.length };
  }
  if (ports.size > 1) return { mapping: "endpoint-dependent", udp: true, servers_answered: answered.length };
  if (ports.size === 0) {
    return { mapping: "no-nat", udp: true, servers_answered: answered.length };
  }
  if (answered.length < 2) return { mapping: "unknown", udp: true, servers_answered: answered.length };
  return { mapping: "endpoint-independent", udp: true, servers_answered: answered.length };
}

async function checkStun(config) {
  const begin = performance.now();
  if (!config.stun.length) {
    addResult("browser.nat", "-", "skip", "The relay offers no STUN URL to compare mappings.");
    return { mapping: "unknown", udp: null };
  }
  const found = await gather([{ urls: config.stun.map((s) => s.url) }], "all");
  const nat = inferMapping(config.stun, found);
  const srflx = found.candidates.filter((c) => c.candidate.type === "srflx");
  const details = {
    candidates: found.candidates.map((c) => candidateFacts(c.candidate, c.url)),
    errors: found.errors.map((e) => ({ ...e, meaning: explainIceError(e.code) })),
    servers: config.stun.map((s) => s.url),
  };
  const metrics = { servers_answered: nat.servers_answered, srflx_candidates: srflx.length };
  const text = {
    "no-nat": "The relay saw your device's own address: no NAT on the way.",
    "endpoint-independent":
      "Your router kept one public address and port for both STUN servers (endpoint-independent mapping).",
    "endpoint-dependent":
      "Your router used a different public port for each STUN server (symmetric NAT): direct calls will often fail.",
    unknown: nat.udp === false
      ? "No STUN server answered over UDP."
      : "Only one STUN server answered; the mapping cannot be compared.",
  }[nat.mapping];
  const status = nat.mapping === "endpoint-dependent" ? "warn"
    : nat.udp === false ? "fail" : nat.mapping === "unknown" ? "skip" : "pass";
  addResult("browser.nat", config.stun.map((s) => s.url).join(" "), status, text, {
    metrics, details: { ...details, mapping: nat.mapping },
    cause_id: status === "fail" ? CAUSE.udpBlocked : status === "warn" ? CAUSE.symmetricNat : null,
    cause: status === "fail" ? "Binding requests over UDP got no answer (error 701)." :
      status === "warn" ? "Each destination gets its own public port, so peers cannot reach you directly." : null,
    fix: status === "fail" ? "Allow outgoing UDP to the relay, or rely on TCP/TLS." :
      status === "warn" ? "Calls need the relay; nothing to change if relaying works." : null,
  });
  durations.stun = round((performance.now() - begin) / 1000, 3);
  return nat;
}

// Why gathering a relay candidate failed: the server's error answer when it sent one (the
// first code other than 701), else no answer over the target's transport.
function gatherCause(target, codes) {
  const answered = codes.find((code) => code !== 701 && code >= 300 && code < 700);
  if (answered !== undefined) return CAUSE_OF_ERROR_CODE[answered] ?? CAUSE.errorResponse;
  return target.transport === "udp" ? CAUSE.udpNoAnswer : CAUSE.tcpNoAnswer;
}

function iceServer(config, target) {
  return { urls: [target.url], username: config.username, credential: config.credential };
}

async function checkRelayGathering(config) {
  const begin = performance.now();
  const outcomes = await Promise.all(config.turn.map(async (target) => {
    const found = await gather([iceServer(config, target)], "relay");
    const relay = found.candidates.find((c) => c.candidate.type === "relay");
    const codes = [...new Set(found.errors.map((e) => e.code))];
    return { target, found, relay, cause_id: relay ? null : gatherCause(target, codes) };
  }));
  for (const { target, found, relay, cause_id: cause } of outcomes) {
    const details = {
      transport: target.transport, family: target.family,
      candidates: found.candidates.map((c) => candidateFacts(c.candidate, c.url)),
      errors: found.errors.map((e) => ({ ...e, meaning: explainIceError(e.code) })),
    };
    if (relay) {
      addResult("browser.gather", target.url, "pass",
        `Relay candidate over ${target.transport.toUpperCase()} in ${Math.round(relay.ms)} ms.`,
        { metrics: { gather_ms: round(relay.ms) }, details });
    } else {
      const codes = [...new Set(found.errors.map((e) => e.code))];
      addResult("browser.gather", target.url, "fail",
        `No relay candidate over ${target.transport.toUpperCase()} (port ${target.port}).`, {
          details, cause_id: cause,
          cause: codes.length ? codes.map(explainIceError).join(" ") :
            "The browser got no answer and reported no error.",
          fix: `Allow outgoing ${target.transport === "udp" ? "UDP" : "TCP"} to port ${target.port}, or use another transport.`,
        });
    }
  }
  durations.gather = round((performance.now() - begin) / 1000, 3);
  return outcomes;
}

// ------------------------------------------------------------------ data through the relay

async function selectedPair(pc) {
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type !== "transport" || !report.selectedCandidatePairId) continue;
    const pair = stats.get(report.selectedCandidatePairId);
    const local = stats.get(pair.localCandidateId);
    return { local_type: local?.candidateType ?? null, relay_protocol: local?.relayProtocol ?? null };
  }
  return null;
}

async function dataThroughRelay(config, target) {
  const settings = { iceServers: [iceServer(config, target)], iceTransportPolicy: "relay" };
  const caller = new RTCPeerConnection(settings);
  const callee = new RTCPeerConnection(settings);
  const link = (from, to) => {
    from.onicecandidate = (e) => { if (e.candidate) to.addIceCandidate(e.candidate).catch(() => {}); };
  };
  link(caller, callee);
  link(callee, caller);
  try {
    const channel = caller.createDataChannel("probe", { ordered: false, maxRetransmits: 0 });
    callee.ondatachannel = ({ channel: peer }) => { peer.onmessage = ({ data }) => peer.send(data); };
    const opened = new Promise((resolve) => { channel.onopen = resolve; });
    await caller.setLocalDescription(await caller.createOffer());
    await callee.setRemoteDescription(caller.localDescription);
    await callee.setLocalDescription(await callee.createAnswer());
    await caller.setRemoteDescription(callee.localDescription);
    const connectBegin = performance.now();
    await within(CONNECT_TIMEOUT_MS, opened, "data channel open");
    const connectMs = performance.now() - connectBegin;
    const sentAt = new Map();
    const rtts = [];
    let echoedBytes = 0;
    let burstOn = false;
    channel.onmessage = ({ data }) => {
      if (typeof data !== "string") return;
      if (data.startsWith("p")) {
        const at = sentAt.get(data);
        if (at !== undefined) { rtts.push(performance.now() - at); sentAt.delete(data); }
      } else if (burstOn) {
        echoedBytes += data.length;
      }
    };
    for (let i = 0; i < PING_COUNT; i++) {
      const ping = `p${i}`;
      sentAt.set(ping, performance.now());
      channel.send(ping);
      await sleep(PING_INTERVAL_MS);
    }
    await sleep(500);
    const pad = "b".repeat(BURST_MESSAGE_BYTES);
    burstOn = true;
    const burstBegin = performance.now();
    while (performance.now() - burstBegin < BURST_MS) {
      if (channel.bufferedAmount < 64 * 1024) channel.send(pad);
      else await sleep(5);
      if (channel.bufferedAmount >= 64 * 1024) await sleep(1);
    }
    await sleep(300);
    burstOn = false;
    const seconds = (performance.now() - burstBegin) / 1000;
    return {
      ok: true, connectMs, rtts, sent: PING_COUNT,
      kbps: (echoedBytes * 8) / 1000 / seconds, pair: await selectedPair(caller),
    };
  } catch (error) {
    return { ok: false, error: String(error.message ?? error) };
  } finally {
    caller.close();
    callee.close();
  }
}

async function checkData(config, gathered) {
  const begin = performance.now();
  const working = {};
  for (const transport of ["udp", "tcp", "tls"]) {
    const offered = gathered.filter((g) => g.target.transport === transport);
    if (!offered.length) continue;
    const usable = offered.find((g) => g.relay);
    if (!usable) {
      addResult("browser.data", offered[0].target.url, "fail",
        `No data through the relay over ${transport.toUpperCase()}: no relay candidate.`,
        { cause_id: offered[0].cause_id, cause: "Gathering over this transport failed (see browser.gather).",
          fix: "See the gathering result for this transport." });
      working[transport] = null;
      continue;
    }
    const target = usable.target;
    const run = await dataThroughRelay(config, target);
    if (!run.ok) {
      addResult("browser.data", target.url, "fail", `No data through the relay over ${transport.toUpperCase()}.`,
        { cause_id: CAUSE.relayDataLost, cause: run.error,
          fix: "The relay was reached but data did not flow; send the result id to support." });
      working[transport] = null;
      continue;
    }
    const loss = 1 - run.rtts.length / run.sent;
    const metrics = {
      connect_ms: round(run.connectMs), rtt_p50_ms: round(percentile(run.rtts, 0.5)),
      rtt_p95_ms: round(percentile(run.rtts, 0.95)), loss_percent: round(loss * 100),
      throughput_kbps: round(run.kbps, 0), packets_sent: run.sent, packets_echoed: run.rtts.length,
    };
    const through = run.pair?.relay_protocol ?? transport;
    const good = run.rtts.length > 0;
    addResult("browser.data", target.url, good ? (loss > 0.2 ? "warn" : "pass") : "fail",
      good ? `Data through the relay over ${transport.toUpperCase()}: RTT ${metrics.rtt_p50_ms} ms ` +
        `(p95 ${metrics.rtt_p95_ms}), ${metrics.loss_percent}% loss, ${metrics.throughput_kbps} kbit/s echoed.`
        : `The data channel opened over ${transport.toUpperCase()} but no packet came back.`,
      { metrics, details: { selected: run.pair, relay_protocol: through, port: target.port },
        cause_id: !good ? CAUSE.noData : loss > 0.2 ? CAUSE.packetLoss : null,
        cause: !good ? "Every packet was lost." : loss > 0.2 ? "More than a fifth of the packets were lost." : null,
        fix: !good || loss > 0.2 ? "Try another network; send the result id to support." : null });
    working[transport] = good ? target : null;
  }
  durations.data = round((performance.now() - begin) / 1000, 3);
  return working;
}

// ------------------------------------------------------------------ the verdict

function describeWorking(working) {
  const names = { udp: "UDP", tcp: "TCP", tls: "TLS" };
  return Object.entries(working).filter(([, t]) => t)
    .map(([transport, target]) => `${names[transport]} on port ${target.port}`);
}

function joinAnd(parts) {
  return parts.length < 2 ? parts.join("") : `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}`;
}

function verdictOf(nat, working, ws) {
  const through = describeWorking(working);
  let kind;
  let text;
  let status;
  if (!through.length) {
    kind = "blocked";
    status = "fail";
    text = "Calls cannot connect from this network: the relay could not be reached over UDP, " +
      "TCP or TLS. Please read the result id below to support.";
  } else if (working.udp) {
    if (nat.mapping === "endpoint-dependent") {
      kind = "symmetric";
      status = "warn";
      text = "Your router gives you a different public address for every destination " +
        "(symmetric NAT), so direct calls will often fail. Calls will work through the relay over UDP.";
    } else if (nat.mapping === "no-nat") {
      kind = "open";
      status = "pass";
      text = "Your network is open: no NAT and UDP works. Calls will work directly and through the relay.";
    } else {
      kind = "udp-ok";
      status = "pass";
      text = "Your network works for calls: UDP reaches the relay and your router keeps one " +
        "public address for every destination.";
    }
  } else {
    const onlyTls443 = through.length === 1 && working.tls && working.tls.port === 443;
    kind = onlyTls443 ? "tls-443-only" : "udp-blocked";
    status = "warn";
    text = onlyTls443
      ? "Your network blocks UDP and lets only TLS on port 443 through. Calls will work through TLS on port 443."
      : `Your network blocks UDP. Calls will work through ${joinAnd(through)}.`;
  }
  if (ws.relay === false || ws.signaling === false) {
    text += " WebSocket connections are blocked here too, which the app may need to start a call.";
    status = status === "pass" ? "warn" : status;
  }
  return { kind, text, status };
}

function worstStatus() {
  for (const status of ["fail", "warn", "pass"]) {
    if (results.some((r) => r.status === status)) return status;
  }
  return "skip";
}

function targetsOf(config) {
  return [...config.stun, ...config.turn].map((t) => ({
    uri: t.url, scheme: t.scheme, host: t.host, port: t.port,
    transport: t.transport === "udp" ? "udp" : "tcp", secure: t.transport === "tls",
    username: t.scheme.startsWith("turn") ? config.username : null,
    has_credential: t.scheme.startsWith("turn"), source: "check page",
  }));
}

function buildReport(config, verdict, share) {
  const status = worstStatus();
  return {
    schema_version: 1, tool: "rtccheck", tool_version: "check-page-1",
    started_at: started.toISOString().replace(/\.\d+Z$/, "+00:00"),
    duration_s: round((performance.now() - startedMs) / 1000, 3),
    status, exit_code: status === "fail" ? 1 : 0, verdict: verdict.text,
    checks_run: ["websocket", "nat", "gather", "data", "verdict"],
    targets: targetsOf(config), requirements: [], results: redacted(results, share),
    durations_s: durations,
    source: "browser", client: clientFacts(),
    relay_observed: { test_id: config.test_id, allocations: [] },
  };
}

async function upload(report) {
  const answer = await fetch(`${base}/report`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(report),
  });
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(body.error ?? `HTTP ${answer.status}`);
  return body.id;
}

// ------------------------------------------------------------------ test with another person

// The relay opens a peer-test room on this check link's authority (no secret reaches the
// page): this page takes one seat, the other person gets a link or a code (or runs rtccheck
// peer CODE). The test itself is the /peer/ page's script, embedded (peer.js, data-ids).
function offerPeerTest(config) {
  const box = document.getElementById("peer-box");
  const button = document.getElementById("peer-start");
  if (!config.peer_test || !window.turnkitPeer) return () => {};
  box.hidden = false;
  button.addEventListener("click", async () => {
    button.disabled = true;
    const status = document.getElementById("peer-status");
    status.textContent = "Opening a room...";
    const answer = await fetch(`/rendezvous/from-check/${token}`, { method: "POST" })
      .catch((error) => ({ ok: false, status: 0, json: async () => ({ error: error.message }) }));
    const room = await answer.json().catch(() => ({}));
    if (!answer.ok) {
      status.textContent = `The room could not be opened: ${room.error ?? `HTTP ${answer.status}`}.`;
      box.dataset.state = "error";
      button.disabled = false;
      return;
    }
    const link = document.getElementById("peer-link");
    link.href = room.link;
    link.textContent = room.link;
    document.getElementById("peer-code").textContent = room.code;
    document.getElementById("peer-code-page").textContent = room.code_page;
    document.getElementById("peer-command").textContent = room.command;
    document.getElementById("peer-invite").hidden = false;
    box.dataset.code = room.code;
    await window.turnkitPeer.run(room.token);
  });
  return () => { button.disabled = false; };
}

async function main() {
  const share = document.getElementById("share-local");
  const answer = await fetch(`${base}/config`);
  const config = await answer.json();
  if (!answer.ok) {
    showVerdict("refused", `This check link cannot be used: ${config.error ?? answer.status}.`, "fail");
    return;
  }
  if (config.note) {
    const note = document.getElementById("note");
    note.textContent = `Reference: ${config.note}`;
    note.hidden = false;
  }
  const enablePeerTest = offerPeerTest(config);
  const [ws, nat, gathered] = await Promise.all([
    checkWebSockets(config), checkStun(config), checkRelayGathering(config),
  ]);
  const working = await checkData(config, gathered);
  const verdict = verdictOf(nat, working, ws);
  addResult("browser.verdict", "-", verdict.status, verdict.text,
    { details: { kind: verdict.kind, mapping: nat.mapping,
      working: Object.fromEntries(Object.entries(working).map(([k, t]) => [k, Boolean(t)])),
      private_addresses_shared: share.checked } });
  showVerdict(verdict.kind, verdict.text, verdict.status);
  try {
    showResultId(await upload(buildReport(config, verdict, share.checked)));
  } catch (error) {
    document.getElementById("verdict").textContent +=
      ` (The report could not be sent: ${error.message}. Your test id: ${config.test_id}.)`;
    document.body.dataset.reported = "failed";
  }
  enablePeerTest();  // after this page's own test, so the two do not compete
}

main().catch((error) => {
  showVerdict("error", `The check could not run: ${error.message ?? error}`, "fail");
  document.body.dataset.reported = "failed";
});
