// k6 load test for mini-forge: ramping virtual users call GET /get-key on every instance.
//
//   k6 run k6_load_test.js
//   k6 run -e BASE_URLS=http://127.0.0.1:9000,http://127.0.0.1:9001 -e SCALE=0.1 k6_load_test.js
//
// BASE_URLS: comma-separated instance URLs (default: the three instances on 8080, 8081, 8082).
// SCALE: multiplies every stage's duration and target, for quick runs (default 1).
// Each key received with status 200 is logged as `KEY:<key>`; run_test_and_analyze.sh
// extracts them and checks that no key was returned twice.
// `mini-forge loadtest` runs the same scenario where k6 is not installed.

import http from 'k6/http';
import { check } from 'k6';

const DEFAULT_BASE_URLS = 'http://127.0.0.1:8080,http://127.0.0.1:8081,http://127.0.0.1:8082';

const STAGES = [
  { seconds: 30, target: 50 },
  { seconds: 30, target: 1000 },
  { seconds: 30, target: 2000 },
  { seconds: 30, target: 0 },
];

const BASE_URLS = (__ENV.BASE_URLS || DEFAULT_BASE_URLS)
  .split(',')
  .map((url) => url.trim().replace(/\/+$/, ''))
  .filter((url) => url.length > 0);

const SCALE = Number(__ENV.SCALE || '1');
if (!(SCALE > 0)) {
  throw new Error(`SCALE=${__ENV.SCALE}: must be a number above 0`);
}
if (BASE_URLS.length === 0) {
  throw new Error('BASE_URLS: give at least one URL');
}

export const options = {
  stages: STAGES.map((stage) => ({
    duration: `${Math.round(stage.seconds * SCALE * 1000) / 1000}s`,
    target: Math.ceil(stage.target * SCALE),
  })),
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(95)<200'],
  },
};

export default function () {
  const baseUrl = BASE_URLS[(__VU + __ITER) % BASE_URLS.length];
  const response = http.get(`${baseUrl}/get-key`);
  if (check(response, { 'status is 200': (r) => r.status === 200 })) {
    console.log(`KEY:${response.body}`);
  }
}
