// A node workload for the malloc shim (ci/selfhost, ci/bench part programs): JSON documents built,
// serialised, parsed, compressed and inflated again, in the main thread and in worker threads
// (V8's heap is its own, but strings, zlib state and worker start-up go through malloc).
//
//   node json_zlib.js [ROUNDS]
'use strict';
const zlib = require('zlib');
const { Worker, isMainThread, workerData, parentPort } = require('worker_threads');

function work(rounds, seed) {
  let bytes = 0;
  for (let r = 0; r < rounds; r++) {
    const doc = [];
    for (let i = 0; i < 20000; i++) doc.push({ id: i + seed, name: 'item' + i, tags: [i % 7, i % 13] });
    const text = JSON.stringify(doc);
    const packed = zlib.gzipSync(Buffer.from(text));
    const back = JSON.parse(zlib.gunzipSync(packed).toString());
    if (back.length !== doc.length) throw new Error('round trip lost items');
    bytes += packed.length;
  }
  return bytes;
}

if (isMainThread) {
  const rounds = Number(process.argv[2] || 10);
  const workers = [1, 2].map((seed) => new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: { rounds, seed } });
    w.on('message', resolve);
    w.on('error', reject);
  }));
  work(rounds, 0);
  Promise.all(workers).then(() => console.log('node workload: ok'));
} else {
  parentPort.postMessage(work(workerData.rounds, workerData.seed));
}
