#!/usr/bin/env node
// sdk_check.mjs - the official Segment Public API TypeScript SDK calls every operation of
// data/operations.json against an API (segspool-emu), and every response must fit the
// SDK's models: an independent check of the emulator, which otherwise routes and
// validates with segspool's own operation table.
//
// usage: node sdk_check.mjs --base URL --token T --ops data/operations.json
//                           --delta models-73.2.0-delta.json
//
// The SDK is the newest on npm (package.json here); its models are brought up to 73.2.0,
// the version today's API serves, by the delta (models_delta.py made it from 73.2.0's
// source): where a model's declaration differs, 73.2.0's attributes, required fields and
// enums replace the npm SDK's, in the SDK's own type map too. Each call goes through the
// SDK's API class, which deserializes the body with the SDK's ObjectSerializer; then:
//   - serializing that result again must give back the response exactly: a field the
//     model does not know is dropped by the SDK, so it shows here;
//   - the response must be what the model declares: required fields present (null only
//     where the declaration allows it), no unknown fields, strings, numbers, booleans,
//     arrays and enums of the declared kind, all the way down.
// A call that fails (any non-2xx), or a response that does not fit, fails the check.
// Prints one line per failure and "N passed, N failed"; exits 1 on any failure.

import { createRequire } from 'node:module';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const sdk = require('@segment/public-api-sdk-typescript');
const SDK_DIR = dirname(require.resolve('@segment/public-api-sdk-typescript/package.json'));
const { ObjectSerializer } = sdk;

let passed = 0, failed = 0;

// check - records one assertion.
function check(cond, what) {
	if (cond) {
		passed++;
	} else {
		failed++;
		process.stderr.write(`FAIL sdk: ${what}\n`);
	}
	return cond;
}

// parseArgs - {base, token, ops, delta}; exits 2 when one is missing.
function parseArgs(argv) {
	const opts = {};
	for (let i = 0; i < argv.length; i += 2)
		opts[argv[i].replace(/^--/, '')] = argv[i + 1];
	for (const k of ['base', 'token', 'ops', 'delta']) {
		if (!opts[k]) {
			process.stderr.write(`sdk_check: --${k} is required\n`);
			process.exit(2);
		}
	}
	return opts;
}

// --- the models: the npm SDK's declarations, with 73.2.0's where they differ ---------

// parseModel - {attributes: [[name, baseName, type, required, nullable]], enums} of one
// model/*.ts file of the SDK, or null when it declares no class.
function parseModel(text) {
	const cls = /export class (\w+)/.exec(text);
	if (!cls)
		return null;
	const body = text.slice(cls.index);
	const end = body.indexOf('static discriminator');
	const decl = end >= 0 ? body.slice(0, end) : body;
	const declared = {};
	for (const m of decl.matchAll(/^    '(\w+)'(\?)?: ([^;]+);/gm))
		declared[m[1]] = [!m[2], /\|\s*null\b/.test(m[3])];
	const attributes = [];
	for (const m of body.matchAll(/\{\s*name: '(\w+)',\s*baseName: '([^']+)',\s*type: '([^']+)',\s*\}/g))
		attributes.push([m[1], m[2], m[3], ...(declared[m[1]] || [false, false])]);
	const enums = {};
	for (const m of text.matchAll(/export enum (\w+) \{([\s\S]*?)\}/g))
		enums[`${cls[1]}.${m[1]}`] = [...m[2].matchAll(/= <any>'([^']*)'/g)].map((v) => v[1]);
	return { name: cls[1], attributes, enums };
}

// loadModels - the npm SDK's models by class name, and every enum by type name.
function loadModels() {
	const models = {}, enums = {};
	const dir = join(SDK_DIR, 'model');
	for (const f of readdirSync(dir)) {
		if (!f.endsWith('.ts') || f.endsWith('.d.ts') || f === 'models.ts')
			continue;
		const m = parseModel(readFileSync(join(dir, f), 'utf8'));
		if (m) {
			models[m.name] = m;
			Object.assign(enums, m.enums);
		}
	}
	return { models, enums };
}

// applyDelta - 73.2.0's declarations over the npm SDK's, in our tables and in the SDK's
// own attribute maps (which its ObjectSerializer reads).
function applyDelta(models, enums, delta) {
	for (const [name, m] of Object.entries(delta.models)) {
		models[name] = { name, attributes: m.attributes, enums: m.enums };
		Object.assign(enums, m.enums);
		if (sdk[name])
			sdk[name].attributeTypeMap = m.attributes.map(([n, b, t]) => ({ name: n, baseName: b, type: t }));
	}
}

// conform - the problems of value as the declared type (empty: it fits).
function conform(value, type, path, models, enums, out) {
	const kind = (what) => out.push(`${path}: ${JSON.stringify(value)?.slice(0, 80)} is not ${what}`);
	if (type === 'any')
		return;
	if (type === 'object' || type === '{ [key: string]: any; }') {
		if (typeof value !== 'object' || value === null || Array.isArray(value))
			kind('an object');
		return;
	}
	if (type === 'string' || type === 'number' || type === 'boolean') {
		if (typeof value !== type)
			kind(`a ${type}`);
		return;
	}
	if (type === 'Date') {
		if (typeof value !== 'string' || Number.isNaN(Date.parse(value)))
			kind('a date');
		return;
	}
	if (type.startsWith('Array<')) {
		if (!Array.isArray(value))
			return kind('an array');
		const sub = type.slice(6, -1);
		value.forEach((v, i) => conform(v, sub, `${path}[${i}]`, models, enums, out));
		return;
	}
	if (enums[type]) {
		if (!enums[type].includes(value))
			kind(`one of ${type} (${enums[type].join(', ')})`);
		return;
	}
	const m = models[type];
	if (!m)
		return out.push(`${path}: the SDK has no model ${type}`);
	if (typeof value !== 'object' || value === null || Array.isArray(value))
		return kind(`an object (${type})`);
	const known = new Set(m.attributes.map((a) => a[1]));
	for (const key of Object.keys(value))
		if (!known.has(key))
			out.push(`${path}.${key}: ${type} has no such field`);
	for (const [, base, t, required, nullable] of m.attributes) {
		const v = value[base];
		if (v === undefined) {
			if (required)
				out.push(`${path}.${base}: required by ${type}, missing`);
		} else if (v === null) {
			if (!nullable)
				out.push(`${path}.${base}: null, which ${type} does not allow`);
		} else {
			conform(v, t, `${path}.${base}`, models, enums, out);
		}
	}
}

// canonical - JSON with sorted keys and undefined members dropped, for comparisons.
function canonical(v) {
	if (Array.isArray(v))
		return `[${v.map(canonical).join(',')}]`;
	if (v && typeof v === 'object') {
		const keys = Object.keys(v).filter((k) => v[k] !== undefined).sort();
		return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
	}
	return JSON.stringify(v);
}

// --- the calls -------------------------------------------------------------------------

// makeCaller - call(opId, api, ...args): through the SDK; checks the response; returns
// the SDK's typed body (null when the call failed).
function makeCaller(models, enums, types, called) {
	return async function call(op, api, ...args) {
		called.add(op);
		let res;
		try {
			res = await api[op](...args);
		} catch (err) {
			const status = err && err.statusCode;
			const msg = err && err.body && err.body.errors ? JSON.stringify(err.body.errors) : String(err && err.message || err);
			check(false, `${op}: the call failed (${status || 'no status'}): ${msg.slice(0, 300)}`);
			return null;
		}
		const type = types[op];
		const raw = res.response.body;
		const problems = [];
		conform(raw, type, `${op} ${type}`, models, enums, problems);
		check(problems.length === 0, `${op}: the response fits 73.2.0's ${type}: ${problems.slice(0, 5).join('; ')}`);
		const again = ObjectSerializer.serialize(res.body, type);
		check(canonical(again) === canonical(raw),
			`${op}: the SDK's ${type} holds the whole response (deserialized, then serialized: ` +
			`${canonical(again).slice(0, 200)} vs ${canonical(raw).slice(0, 200)})`);
		check(res.body instanceof sdk[type], `${op}: the SDK deserialized the body into ${type}`);
		return res.body;
	};
}

// api - an SDK API class on the base URL with the token.
function api(Cls, opts) {
	const a = new Cls(opts.base);
	a.accessToken = opts.token;
	return a;
}

// run - every operation, in an order where each finds what it needs (ids from earlier
// answers, as the SDK returns them).
async function run(opts, call) {
	const sources = api(sdk.SourcesApi, opts), destinations = api(sdk.DestinationsApi, opts);
	const functions = api(sdk.FunctionsApi, opts), transformations = api(sdk.TransformationsApi, opts);
	const users = api(sdk.IAMUsersApi, opts), warehouses = api(sdk.WarehousesApi, opts);
	const catalog = api(sdk.CatalogApi, opts), events = api(sdk.EventsApi, opts);
	const page = { count: 200 };
	const JS = 'IqDTy1TpoU'; // the Javascript source, as Segment's docs name it

	const web = await call('createSource', sources, { slug: 'sdk-web', enabled: true, metadataId: JS, settings: { region: 'us' } });
	const ios = await call('createSource', sources, { slug: 'sdk-ios', enabled: true, metadataId: JS, disconnectAllWarehouses: true });
	const webId = web && web.data.source.id, iosId = ios && ios.data.source.id;
	const setting = { name: 'apiKey', label: 'API Key', type: 'STRING', description: 'Key', required: true, sensitive: true };
	const fnIds = {};
	for (const t of ['SOURCE', 'DESTINATION', 'INSERT_DESTINATION', 'INSERT_SOURCE', 'INSERT_TRANSFORMATION']) {
		const f = await call('createFunction', functions, { code: 'async function onTrack(e) {}', displayName: `sdk ${t}`, resourceType: t, settings: [setting] });
		fnIds[t] = f && f.data.function.id;
	}
	await call('createInvites', users, { invites: [{ email: 'sdk.ops@example.com', permissions: [{ roleId: 'role_member', resources: [{ id: 'ws_emu0001', type: 'WORKSPACE' }] }] }] });
	const dcat = await call('getDestinationsCatalog', catalog, { count: 5 });
	const destMeta = dcat && dcat.data.destinationsCatalog[0].id;
	const dst = await call('createDestination', destinations, { sourceId: webId, metadataId: destMeta, enabled: true, name: 'sdk dest', settings: { apiKey: 'k' } });
	const dstId = dst && dst.data.destination.id;
	const trf = await call('createTransformation', transformations, { name: 'sdk rename', sourceId: webId, enabled: true, if: 'event = "Checkout"', newEventName: 'Order Completed', drop: false });
	const trfId = trf && trf.data.transformation.id;
	await call('addConnectionFromSourceToWarehouse', warehouses, 'wh_2', iosId);
	const sub = await call('createDestinationSubscription', destinations, dstId, { name: 'sdk sub', actionId: 'act_1', trigger: 'type = "track"', enabled: true, settings: {} });
	const subId = sub && sub.data.destinationSubscription.id;

	await call('getSource', sources, webId);
	await call('getDestination', destinations, dstId);
	await call('getFunction', functions, fnIds.SOURCE);
	await call('getTransformation', transformations, trfId);
	await call('getSubscriptionFromDestination', destinations, dstId, subId);
	await call('getUser', users, 'user_2');
	await call('getWarehouse', warehouses, 'wh_1');
	await call('getSourceMetadata', catalog, JS);
	await call('getDestinationMetadata', catalog, destMeta);
	const wcat = await call('getWarehousesCatalog', catalog, page);
	await call('getWarehouseMetadata', catalog, wcat && wcat.data.warehousesCatalog[0].id);
	await call('getSourcesCatalog', catalog, page);
	await call('listSources', sources, page);
	await call('listDestinations', destinations, page);
	for (const t of Object.keys(fnIds)) {
		const l = await call('listFunctions', functions, page, t);
		check(l && l.data.functions.length === 1 && l.data.functions[0].resourceType === t,
			`listFunctions ${t}: the one ${t} function`);
	}
	await call('listTransformations', transformations, page);
	await call('listSubscriptionsFromDestination', destinations, dstId, page);
	await call('listUsers', users, page);
	await call('listWarehouses', warehouses, page);
	await call('listConnectedSourcesFromWarehouse', warehouses, 'wh_1', page);
	await call('getEventsVolumeFromWorkspace', events, 'DAY', '2026-10-01T00:00:00Z', '2026-10-04T00:00:00Z', ['eventName']);
	await call('getEventsVolumeFromWorkspace', events, 'HOUR', '2026-10-01T00:00:00Z', '2026-10-01T03:00:00Z', ['source', 'eventType'], ['src_evt_1'], undefined, ['track']);

	await call('updateSource', sources, webId, { name: 'SDK Web', enabled: false });
	await call('updateDestination', destinations, dstId, { name: 'sdk dest 2', enabled: false });
	await call('updateFunction', functions, fnIds.SOURCE, { displayName: 'sdk source 2', description: 'v2' });
	await call('updateTransformation', transformations, trfId, { name: 'sdk rename 2', enabled: false });
	await call('updateSubscriptionForDestination', destinations, dstId, subId, { input: { name: 'sdk sub 2', enabled: false } });
	await call('updateWarehouse', warehouses, 'wh_2', { name: 'BigQuery EU', enabled: false, settings: { hostname: 'bq-eu.example.com' } });

	await call('removeSourceConnectionFromWarehouse', warehouses, 'wh_1', webId);
	await call('removeSubscriptionFromDestination', destinations, dstId, subId);
	await call('deleteDestination', destinations, dstId);
	await call('deleteTransformation', transformations, trfId);
	await call('deleteFunction', functions, fnIds.DESTINATION);
	await call('deleteSource', sources, iosId);
	await call('deleteUsers', users, ['user_24', 'user_25']);
	await call('deleteWarehouse', warehouses, 'wh_3');
}

// main - models, delta, calls, and the tally.
async function main() {
	const opts = parseArgs(process.argv.slice(2));
	const { models, enums } = loadModels();
	const delta = JSON.parse(readFileSync(opts.delta, 'utf8'));
	const sdkVersion = JSON.parse(readFileSync(join(SDK_DIR, 'package.json'), 'utf8')).version;
	check(delta.npm_sdk === sdkVersion, `the delta was made for the installed SDK (${delta.npm_sdk} vs ${sdkVersion})`);
	applyDelta(models, enums, delta);
	const ops = JSON.parse(readFileSync(opts.ops, 'utf8')).map((o) => o.operation_id).filter(Boolean).sort();
	const called = new Set();
	await run(opts, makeCaller(models, enums, delta.response_types, called));
	check(JSON.stringify([...called].sort()) === JSON.stringify(ops),
		`every operation was called: missing ${ops.filter((o) => !called.has(o)).join(', ') || 'none'}`);
	console.log(`${passed} passed, ${failed} failed`);
	process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
	process.stderr.write(`sdk_check: ${err && err.stack ? err.stack : err}\n`);
	process.exit(1);
});
