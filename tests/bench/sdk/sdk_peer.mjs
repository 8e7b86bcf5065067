#!/usr/bin/env node
// sdk_peer.mjs - benchmark peer: creates N sources through the official
// Segment Public API TypeScript SDK (SourcesApi.createSource) with a fixed
// number of requests in flight, and prints one JSON line of results.
//
// usage: node sdk_peer.mjs --base http://127.0.0.1:PORT --token T --n 20000
//                          --concurrency 16 --metadata-id ID
//
// No durability, retries or rate limiting: this is the "plain SDK loop" a
// user would write, to compare segspool's throughput and memory against.

import { createRequire } from 'node:module';

// The SDK is CommonJS (dist/api.js); createRequire loads it from this folder's node_modules.
const require = createRequire(import.meta.url);
const { SourcesApi } = require('@segment/public-api-sdk-typescript');

const USAGE = 'usage: node sdk_peer.mjs --base URL --token T --n N ' +
	'--concurrency C --metadata-id ID';

// die - print a message to stderr and exit with status 2 (usage error).
function die(msg) {
	process.stderr.write(`sdk_peer: ${msg}\n${USAGE}\n`);
	process.exit(2);
}

// positiveInt - the integer value of option name, or die.
function positiveInt(name, text) {
	const v = Number(text);
	if (!Number.isInteger(v) || v < 1)
		die(`--${name} must be a positive integer, not "${text}"`);
	return v;
}

// parseArgs - the options as {base, token, n, concurrency, metadataId}.
function parseArgs(argv) {
	const opts = { n: 20000, concurrency: 16 };
	for (let i = 0; i < argv.length; i += 2) {
		const name = argv[i], value = argv[i + 1];
		if (value === undefined)
			die(`missing value for ${name}`);
		switch (name) {
		case '--base': opts.base = value.replace(/\/+$/, ''); break;
		case '--token': opts.token = value; break;
		case '--n': opts.n = positiveInt('n', value); break;
		case '--concurrency': opts.concurrency = positiveInt('concurrency', value); break;
		case '--metadata-id': opts.metadataId = value; break;
		default: die(`unknown option ${name}`);
		}
	}
	for (const [key, flag] of [['base', '--base'], ['token', '--token'],
				   ['metadataId', '--metadata-id']])
		if (!opts[key])
			die(`${flag} is required`);
	return opts;
}

// describeError - one line for a failed call: HTTP status and API message, or the network error.
function describeError(err) {
	if (err && err.statusCode) {
		const msg = err.body && err.body.errors && err.body.errors[0] &&
			err.body.errors[0].message;
		return `HTTP ${err.statusCode}${msg ? ': ' + msg : ''}`;
	}
	return err && err.message ? err.message : String(err);
}

// runPool - createSource n times with exactly `concurrency` workers pulling from one counter.
async function runPool(api, opts) {
	const stats = { ok: 0, failed: 0, firstError: null };
	const runId = `${process.pid}-${Date.now().toString(36)}`;
	let next = 0;

	async function worker() {
		while (next < opts.n) {
			const i = next++;
			try {
				await api.createSource({
					slug: `bench-${runId}-${i}`,
					enabled: true,
					metadataId: opts.metadataId,
					// the body segspool's bench jobs send: the same work on both sides
					disconnectAllWarehouses: true,
				});
				stats.ok++;
			} catch (err) {
				stats.failed++;
				if (!stats.firstError)
					stats.firstError = describeError(err);
			}
		}
	}

	const workers = [];
	for (let w = 0; w < Math.min(opts.concurrency, opts.n); w++)
		workers.push(worker());
	await Promise.all(workers);
	return stats;
}

// main - configure the SDK against --base, run the pool, print the JSON result line.
async function main() {
	const opts = parseArgs(process.argv.slice(2));
	// The generated API classes take the base path in the constructor; the
	// accessToken setter feeds HttpBearerAuth (Authorization: Bearer T).
	const api = new SourcesApi(opts.base);
	api.accessToken = opts.token;

	const start = process.hrtime.bigint();
	const stats = await runPool(api, opts);
	const seconds = Number(process.hrtime.bigint() - start) / 1e9;

	if (stats.firstError)
		process.stderr.write(`sdk_peer: ${stats.failed} calls failed; first: ${stats.firstError}\n`);
	const round = (x, d) => Number(x.toFixed(d));
	process.stdout.write(JSON.stringify({
		peer: 'ts-sdk',
		n: opts.n,
		ok: stats.ok,
		failed: stats.failed,
		seconds: round(seconds, 3),
		calls_per_sec: round(opts.n / seconds, 1),
		// maxRSS is in kilobytes.
		peak_rss_mb: round(process.resourceUsage().maxRSS / 1024, 1),
	}) + '\n');
	process.exitCode = stats.failed ? 1 : 0;
}

main().catch((err) => {
	process.stderr.write(`sdk_peer: ${err && err.stack ? err.stack : err}\n`);
	process.exit(1);
});
