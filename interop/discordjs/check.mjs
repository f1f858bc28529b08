// Interop check: does a real third-party client, discord.js's @discordjs/ws,
// reach READY, receive every dispatch in order and resume through the
// discord-gateway-stream simulator (`cargo run --example simulator`)?
//
//   node check.mjs PORT [--compression zlib-native|zlib-sync|none]
//                       [--events N] [--script resume|basic] [--timeout SECS]
//
// Starts nothing itself: the simulator must already listen on 127.0.0.1:PORT
// (freshly started, since its first session is the one checked). Makes no
// network call besides the WebSocket to the simulator: the REST client is a
// stub answering only GET /gateway/bot, and global fetch is disabled.
//
// Exits 0 when it saw READY, MESSAGE_CREATE "message 1".."message N" exactly
// once each and in order with strictly increasing `s`, and (script `resume`)
// a RESUMED preceded by the replayed events on a connection to READY's
// resume_gateway_url, without a second Identify. Otherwise exits 1 with the
// reasons, at the latest after the timeout.

import {
	CompressionMethod,
	WebSocketManager,
	WebSocketShardEvents,
	version as wsVersion,
} from '@discordjs/ws';

// Gateway intent bits (discord-api-types' GatewayIntentBits), spelled out so
// that only @discordjs/ws is imported.
const GUILDS = 1 << 0;
const GUILD_MESSAGES = 1 << 9;

const USAGE =
	'usage: node check.mjs PORT [--compression zlib-native|zlib-sync|none] [--events N] [--script resume|basic] [--timeout SECS]';

function parseArgs(argv) {
	const opts = { port: null, compression: 'zlib-native', events: 20, script: 'resume', timeout: 30 };
	for (let i = 0; i < argv.length; i++) {
		const arg = argv[i];
		const value = () => {
			if (i + 1 >= argv.length) fail(`${arg} needs a value`);
			return argv[++i];
		};
		switch (arg) {
			case '--compression':
				opts.compression = value();
				break;
			case '--events':
				opts.events = Number(value());
				break;
			case '--script':
				opts.script = value();
				break;
			case '--timeout':
				opts.timeout = Number(value());
				break;
			case '-h':
			case '--help':
				console.log(USAGE);
				process.exit(0);
			default:
				if (opts.port === null && /^\d+$/.test(arg)) opts.port = Number(arg);
				else fail(`unknown argument ${arg}`);
		}
	}
	if (!opts.port || opts.port > 65535) fail('PORT is required');
	if (!['zlib-native', 'zlib-sync', 'none'].includes(opts.compression)) fail(`bad --compression ${opts.compression}`);
	if (!['resume', 'basic'].includes(opts.script)) fail(`bad --script ${opts.script}`);
	if (!(opts.events >= 1) || !(opts.timeout > 0)) fail('--events and --timeout must be positive');
	return opts;
}

function fail(message) {
	console.error(`check.mjs: ${message}\n${USAGE}`);
	process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
const tag = `[discordjs ${wsVersion} ${opts.compression}]`;
const log = (...args) => console.log(tag, ...args);

// No network: anything that tries HTTP fails loudly.
globalThis.fetch = async (input) => {
	throw new Error(`check.mjs: unexpected network call to ${input}`);
};
const gatewayInformation = {
	url: `ws://127.0.0.1:${opts.port}`,
	shards: 1,
	session_start_limit: { total: 1000, remaining: 1000, reset_after: 0, max_concurrency: 1 },
};
// @discordjs/ws 2.x has no fetchGatewayInformation option: the manager calls
// `options.rest.get(Routes.gatewayBot())`. This stub is that REST client.
const rest = {
	async get(route) {
		if (route !== '/gateway/bot') throw new Error(`check.mjs: unexpected REST GET ${route}`);
		return structuredClone(gatewayInformation);
	},
};

const compression = {
	'zlib-native': CompressionMethod.ZlibNative,
	'zlib-sync': CompressionMethod.ZlibSync,
	none: null,
}[opts.compression];

const manager = new WebSocketManager({
	token: 'interop-check-token',
	intents: GUILDS | GUILD_MESSAGES,
	rest,
	compression,
	shardCount: 1,
	helloTimeout: 10_000,
	readyTimeout: 10_000,
});

// Observations.
const state = {
	readies: 0,
	resumed: 0,
	identifies: 0,
	resumes: 0,
	connects: [], // URLs, in order
	closes: [], // close codes seen by the shard
	resumeGatewayUrl: null,
	sessionId: null,
	lastSeq: 0,
	seqErrors: [],
	messages: [], // n of "message n", in arrival order
	replayed: [], // per RESUMED: MESSAGE_CREATE numbers received between Resume and RESUMED
	resumeUrls: [], // connect URL of each connection that reached RESUMED
	replayedByLib: [], // "Resumed and replayed X events" (RESUMED itself included)
	dispatchCounts: {},
	heartbeatAcks: 0,
	compressionUsed: null,
	errors: [],
	debugTail: [],
};
let resuming = false;
let currentReplay = [];
let currentUrl = null;

manager.on(WebSocketShardEvents.Debug, (message) => {
	state.debugTail.push(message);
	if (state.debugTail.length > 40) state.debugTail.shift();
	if (process.env.CHECK_DEBUG) log('debug:', message);
	let m;
	if ((m = /^Connecting to (\S+)/.exec(message))) {
		currentUrl = m[1];
		state.connects.push(currentUrl);
		log(`connecting to ${currentUrl}`);
	} else if (message.startsWith('Identifying')) {
		state.identifies++;
		state.compressionUsed = /compression: (\S+)/.exec(message)?.[1] ?? null;
		log(`identify (compression: ${state.compressionUsed})`);
	} else if (message.startsWith('Resuming session')) {
		state.resumes++;
		resuming = true;
		currentReplay = [];
		log(`resume: ${message.split('\n').slice(1).map((s) => s.trim()).join(', ')}`);
	} else if ((m = /^Resumed and replayed (\d+) events/.exec(message))) {
		state.replayedByLib.push(Number(m[1]));
	} else if (/^Destroying shard/.test(message)) {
		log(`destroying shard: ${message.split('\n').slice(1).map((s) => s.trim()).join(', ')}`);
	}
});
manager.on(WebSocketShardEvents.Closed, (code) => {
	state.closes.push(code);
	log(`connection closed, code ${code}`);
});
manager.on(WebSocketShardEvents.HeartbeatComplete, () => {
	state.heartbeatAcks++;
});
manager.on(WebSocketShardEvents.Error, (error) => {
	state.errors.push(String(error?.stack ?? error));
	log(`error: ${error?.message ?? error}`);
});
manager.on(WebSocketShardEvents.SocketError, (error) => {
	log(`socket error: ${error?.message ?? error}`);
});
manager.on(WebSocketShardEvents.Dispatch, (payload) => {
	const { t, s, d } = payload;
	state.dispatchCounts[t] = (state.dispatchCounts[t] ?? 0) + 1;
	if (typeof s !== 'number' || s <= state.lastSeq) {
		state.seqErrors.push(`${t} s=${s} after s=${state.lastSeq}`);
	} else {
		state.lastSeq = s;
	}
	switch (t) {
		case 'READY':
			state.readies++;
			state.sessionId = d.session_id;
			state.resumeGatewayUrl = d.resume_gateway_url;
			log(`READY s=${s} session_id=${d.session_id} resume_gateway_url=${d.resume_gateway_url}`);
			break;
		case 'RESUMED':
			state.resumed++;
			state.replayed.push(currentReplay);
			state.resumeUrls.push(currentUrl);
			log(`RESUMED s=${s} after replaying MESSAGE_CREATE ${fmtRange(currentReplay)} on ${currentUrl}`);
			resuming = false;
			break;
		case 'MESSAGE_CREATE': {
			const n = Number(/^message (\d+)$/.exec(d?.content ?? '')?.[1]);
			state.messages.push(Number.isInteger(n) ? n : NaN);
			if (resuming) currentReplay.push(n);
			log(`MESSAGE_CREATE s=${s} "${d?.content}"${resuming ? ' (replayed)' : ''}`);
			break;
		}
		default:
			log(`${t} s=${s}`);
	}
	settle();
});

function fmtRange(ns) {
	return ns.length ? `${ns[0]}..${ns[ns.length - 1]} (${ns.length})` : '(none)';
}

/** Returns the list of unmet conditions (empty: success). */
function problems() {
	const out = [];
	if (state.readies < 1) out.push('no READY received');
	if (state.readies > 1) out.push(`${state.readies} READYs: the client re-identified instead of resuming`);
	const want = Array.from({ length: opts.events }, (_, i) => i + 1);
	const got = state.messages;
	const inOrder = got.every((n, i) => n === i + 1);
	if (!inOrder) out.push(`MESSAGE_CREATEs out of order or duplicated: [${got.join(',')}]`);
	else if (got.length < want.length) out.push(`only ${got.length}/${opts.events} MESSAGE_CREATE dispatches`);
	if (state.seqErrors.length) out.push(`sequence numbers not increasing: ${state.seqErrors.join('; ')}`);
	if (state.errors.length) out.push(`shard errors: ${state.errors.join('; ')}`);
	if (opts.compression !== 'none' && state.identifies > 0 && state.compressionUsed !== 'zlib-stream') {
		out.push(`transport compression not in use (library reported "${state.compressionUsed}")`);
	}
	const wantQuery = opts.compression === 'none' ? '?v=10&encoding=json' : '?v=10&encoding=json&compress=zlib-stream';
	const badUrls = state.connects.filter((u) => !u.endsWith(wantQuery));
	if (badUrls.length) out.push(`connected without the query ${wantQuery}: ${badUrls.join(', ')}`);
	if (opts.script === 'resume') {
		if (state.resumed < 1) out.push('no RESUMED received');
		else {
			if (!state.replayed.some((r) => r.length > 0)) out.push('RESUMED without any replayed MESSAGE_CREATE');
			if (state.resumeGatewayUrl && !state.resumeUrls.every((u) => u?.startsWith(state.resumeGatewayUrl))) {
				out.push(`resumed on ${state.resumeUrls.join(', ')}, not on resume_gateway_url ${state.resumeGatewayUrl}`);
			}
		}
	}
	return out;
}

let finished = false;
function settle() {
	if (!finished && problems().length === 0) void finish(0);
}

async function finish(code) {
	if (finished) return;
	finished = true;
	clearTimeout(timer);
	const summary = {
		library: `@discordjs/ws ${wsVersion}`,
		compression: opts.compression,
		compressionReported: state.compressionUsed,
		readies: state.readies,
		identifies: state.identifies,
		resumes: state.resumes,
		resumed: state.resumed,
		messageCreates: state.messages.length,
		dispatches: state.dispatchCounts,
		lastSeq: state.lastSeq,
		replayedMessageCreates: state.replayed.map((r) => r.length),
		replayedPerLibrary: state.replayedByLib,
		resumeGatewayUrl: state.resumeGatewayUrl,
		connections: state.connects,
		closeCodes: state.closes,
		heartbeatAcks: state.heartbeatAcks,
	};
	log('summary', JSON.stringify(summary));
	const reasons = problems();
	if (code === 0) {
		log(`PASS: READY, ${state.messages.length} MESSAGE_CREATE in order` +
			(opts.script === 'resume' ? `, RESUMED after replaying ${fmtRange(state.replayed.at(-1))}` : ''));
	} else {
		console.error(`${tag} FAIL after ${opts.timeout}s:\n  - ${reasons.join('\n  - ')}`);
		console.error(`${tag} last debug messages:\n${state.debugTail.map((m) => `    ${m.replaceAll('\n', '\n    ')}`).join('\n')}`);
	}
	// Close 1000 (ends the session) but never wait long for it.
	await Promise.race([manager.destroy({ reason: 'check finished' }).catch(() => {}), new Promise((r) => setTimeout(r, 2000))]);
	process.exit(code);
}

const timer = setTimeout(() => void finish(1), opts.timeout * 1000);

log(`connecting to simulator on port ${opts.port}, expecting ${opts.events} MESSAGE_CREATE (script ${opts.script})`);
manager.connect().catch((error) => {
	state.errors.push(String(error?.stack ?? error));
	log(`connect() failed: ${error?.message ?? error}`);
	void finish(1);
});
