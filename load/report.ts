/**
 * `--report FILE.html`: one self-contained page — uPlot and its stylesheet inlined from the npm package, the run's
 * figures embedded as JSON, nothing fetched from anywhere — with throughput, latency percentiles and errors over
 * time, the latency distribution, the figures' tables and the run's parameters. Every figure in the tables is the
 * JSON's value as it is (`data-key` names its path in the --json output).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { LATENCY_LABELS, type LoadResult } from './result.js';
import { describeRun } from './table.js';

const require = createRequire(import.meta.url);
let uplot: { js: string; css: string } | undefined;
function uplotAssets(): { js: string; css: string } {
  return (uplot ??= { js: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'), css: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8') });
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** JSON inside <script>: no `</script>` or `<!--` can end it early. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

function cell(key: string, value: unknown): string {
  return `<td class="num" data-key="${esc(key)}">${esc(value === undefined || value === null ? '' : String(value))}</td>`;
}

function countsTable(r: LoadResult): string {
  const rows: Array<[string, string, string?]> = [
    ['sent', 'counts.sent', 'throughput.sent'],
    [r.command === 'smtp' ? 'accepted (2xx)' : 'uploaded', 'counts.accepted', 'throughput.accepted'],
    ['failed', 'counts.failed'],
    ['interrupted (Ctrl-C) before an answer', 'counts.interrupted'],
    ['unsent (no free connection before the end)', 'counts.unsent'],
  ];
  if (r.counts.stored !== undefined) rows.push(['objects stored', 'counts.stored']);
  if (r.counts.announced !== undefined) rows.push(['notifications published', 'counts.announced']);
  rows.push(['deliveries expected (a copy per message and rule)', 'counts.deliveriesExpected'], ['delivered', 'counts.delivered', 'throughput.delivered'], ['duplicate notifications', 'counts.duplicateNotifications']);
  if (r.counts.connectionsOpened !== undefined) rows.push(['connections opened', 'counts.connectionsOpened']);
  if (r.counts.recipientsRefused !== undefined) rows.push(['recipients refused', 'counts.recipientsRefused']);
  const get = (path: string) => path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], r);
  const body = rows.map(([label, key, rate]) => `<tr><th>${esc(label)}</th>${cell(key, get(key))}${rate ? cell(rate, get(rate)) : '<td></td>'}</tr>`).join('');
  return `<table id="counts"><thead><tr><th></th><th>count</th><th>per second</th></tr></thead><tbody>${body}</tbody></table>`;
}

function latencyTable(r: LoadResult): string {
  const cols = ['count', 'min', 'p50', 'p90', 'p99', 'p999', 'max', 'mean'] as const;
  const names = (['store', 'accept', 'response', 'delivery'] as const).filter((n) => r.latency[n]);
  if (!names.length) return '<p>No latency was measured (nothing was accepted).</p>';
  const head = `<tr><th>latency, ms</th>${cols.map((c) => `<th>${c === 'p999' ? 'p99.9' : c}</th>`).join('')}</tr>`;
  const body = names.map((n) => `<tr><th>${esc(LATENCY_LABELS[r.command][n] ?? n)}</th>${cols.map((c) => cell(`latency.${n}.${c}`, r.latency[n]![c])).join('')}</tr>`).join('');
  return `<table id="latency"><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

function errorsTable(r: LoadResult): string {
  if (r.errors.total === 0) return `<p>No errors (<span data-key="errors.total">${r.errors.total}</span>).</p>`;
  const byClass = Object.entries(r.errors.byClass)
    .map(([k, v]) => `<tr><th>${esc(k)}</th>${cell(`errors.byClass.${k}`, v)}</tr>`)
    .join('');
  const list = r.errors.list.map((e, i) => `<tr><td>${esc(e.class)}</td><td>${esc(e.code)}</td><td>${esc(e.stage)}</td>${cell(`errors.list.${i}.count`, e.count)}<td>${esc(e.message)}</td></tr>`).join('');
  return `<p>Total: <span data-key="errors.total">${r.errors.total}</span></p><table id="error-classes"><tbody>${byClass}</tbody></table><table id="error-list"><thead><tr><th>class</th><th>code</th><th>at</th><th>count</th><th>first seen as</th></tr></thead><tbody>${list}</tbody></table>`;
}

function parametersTable(r: LoadResult): string {
  const rows = Object.entries(r.parameters)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td data-param="${esc(k)}">${esc(Array.isArray(v) ? v.join(', ') : String(v))}</td></tr>`)
    .join('');
  return `<table id="parameters"><tbody>${rows}<tr><th>started</th><td>${esc(r.startedAt)}</td></tr><tr><th>ended</th><td>${esc(r.endedAt)} (${esc(r.endedBy)})</td></tr></tbody></table>`;
}

/** Draws the charts from the embedded result; runs in the browser. */
const CHARTS = String.raw`
(function () {
  var R = JSON.parse(document.getElementById('load-result').textContent);
  R.labels = JSON.parse(document.getElementById('load-labels').textContent);
  var palette = ['#1f77b4', '#2ca02c', '#d62728', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79'];
  var n = R.timeline.seconds;
  var xs = []; for (var i = 0; i < n; i++) xs.push(i + 1);
  function width(el) { return Math.max(320, Math.min(1100, el.clientWidth || 900)); }
  function make(id, title, yLabel, series, data, extra) {
    var el = document.getElementById(id);
    if (!el) return;
    var opts = {
      title: title, width: width(el), height: 280,
      scales: Object.assign({ x: { time: false } }, (extra && extra.scales) || {}),
      axes: [Object.assign({ label: 'seconds into the run' }, (extra && extra.xAxis) || {}), { label: yLabel, size: 70 }],
      series: [{ label: (extra && extra.xLabel) || 'second' }].concat(series.map(function (s, i) {
        return { label: s, stroke: palette[i % palette.length], width: 2, spanGaps: false, points: { show: data[0].length < 120 } };
      })),
      legend: { live: true }
    };
    new uPlot(opts, data, el);
    el.setAttribute('data-drawn', 'yes');
  }
  var t = R.timeline;
  make('chart-throughput', 'Throughput', 'messages / s', ['sent', R.command === 'smtp' ? 'accepted' : 'uploaded', 'failed', 'delivered'], [xs, t.sent, t.accepted, t.failed, t.delivered]);
  var names = ['store', 'accept', 'response', 'delivery'].filter(function (k) { return t.latency[k]; });
  names.forEach(function (k) {
    var l = t.latency[k];
    make('chart-latency-' + k, R.labels[k] + ': percentiles per second', 'ms', ['p50', 'p90', 'p99', 'max'], [xs, l.p50, l.p90, l.p99, l.max], { scales: { y: { distr: 3 } } });
  });
  // Distribution: x in "nines" (0 = p0, 1 = p90, 2 = p99, 3 = p99.9 …), the HdrHistogram way of showing a tail.
  var dn = names.filter(function (k) { return R.distribution[k] && R.distribution[k].length; });
  if (dn.length) {
    var px = R.distribution[dn[0]].map(function (pt) { return pt[0] >= 100 ? 5.5 : -Math.log10(1 - pt[0] / 100); });
    var dd = [px].concat(dn.map(function (k) { return R.distribution[k].map(function (pt) { return pt[1]; }); }));
    make('chart-distribution', 'Latency distribution (whole run)', 'ms', dn.map(function (k) { return R.labels[k]; }), dd, {
      xLabel: 'percentile',
      scales: { y: { distr: 3 }, x: { time: false, range: [0, 5.6] } },
      xAxis: { label: 'percentile', splits: function () { return [0, 1, 2, 3, 4, 5, 5.5]; }, values: function (u, splits) { return splits.map(function (v) { return v === 5.5 ? 'max' : v === 0 ? '0%' : (100 - Math.pow(10, 2 - v)).toFixed(Math.max(0, v - 2)) + '%'; }); } }
    });
  }
  var ec = Object.keys(t.errors);
  if (ec.length) make('chart-errors', 'Errors per second, by class', 'errors / s', ec, [xs].concat(ec.map(function (k) { return t.errors[k]; })));
  else make('chart-errors', 'Errors per second (none)', 'errors / s', ['errors'], [xs, xs.map(function () { return 0; })]);
  document.body.setAttribute('data-charts', String(document.querySelectorAll('[data-drawn]').length));
})();
`;

export function renderReport(r: LoadResult): string {
  const { js, css } = uplotAssets();
  const labels = LATENCY_LABELS[r.command];
  const latencyCharts = (['store', 'accept', 'response', 'delivery'] as const)
    .filter((n) => r.timeline.latency[n])
    .map((n) => `<div class="chart" id="chart-latency-${n}"></div>`)
    .join('\n');
  const notes = [...r.delivery.notes.map((n) => `<p class="note">${esc(n)}</p>`), ...r.delivery.leftovers.map((l) => `<p class="warn">Not removed: ${esc(l.what)} (${esc(l.error)}) — remove it with <code>${esc(l.fix)}</code></p>`)].join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(describeRun(r))}</title>
<style>${css}</style>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1150px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } .sub { color: #666; } .note { color: #555; } .warn { color: #b00; font-weight: 600; }
.chart { margin: 12px 0 20px; }
</style>
</head>
<body>
<h1>${esc(describeRun(r))}</h1>
<p class="sub">${esc(r.startedAt)} → ${esc(r.endedAt)}, ${esc(String(r.seconds.run))} s, ended by ${esc(r.endedBy)}. Made by <code>mailroom load</code>; every figure below is the <code>--json</code> output's.</p>
${notes}
<h2>Counts</h2>
${countsTable(r)}
<h2>Latency</h2>
${latencyTable(r)}
<h2>Over time</h2>
<div class="chart" id="chart-throughput"></div>
${latencyCharts}
<h2>Latency distribution</h2>
<div class="chart" id="chart-distribution"></div>
<h2>Errors</h2>
${errorsTable(r)}
<div class="chart" id="chart-errors"></div>
<h2>Parameters</h2>
${parametersTable(r)}
<script id="load-result" type="application/json">${scriptJson(r)}</script>
<script id="load-labels" type="application/json">${scriptJson(labels)}</script>
<script>${js}</script>
<script>${CHARTS}</script>
</body>
</html>
`;
}
