// `vaecf report DIR`: an HTML page (and SVG files) for a training run, a beta study or a sweep:
// loss, KL, beta and validation metric per epoch; the beta study; the sweep table; our test numbers
// beside popularity and published ones.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { VaecfInputError } from '../data/csr';
import { betaStudySpec, comparisonSpec, PLOTTING_MISSING, renderSvg, trainingCurvesSpec, type EpochPoint } from './plots';
import type { TrainResults } from './run';

export interface ReportResult {
  html: string;
  svgs: string[];
  /** Vega-Lite specs written instead of SVGs where the optional plotting packages are not installed. */
  specs: string[];
  /** Why plots were not drawn (with what to install), when they were not. */
  plotsSkipped?: string;
}

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);

function readJson<T>(file: string): T | null {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as T) : null;
}

function readHistory(runDir: string): EpochPoint[] {
  const f = path.join(runDir, 'metrics.jsonl');
  if (!fs.existsSync(f)) return [];
  return fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as EpochPoint);
}

function comparisonRows(results: TrainResults, published?: Record<string, number>, label = 'ours'): Array<{ model: string; metric: string; value: number; source: string }> {
  const rows: Array<{ model: string; metric: string; value: number; source: string }> = [];
  for (const [m, s] of Object.entries(results.test)) rows.push({ model: label, metric: m, value: s.mean, source: 'vaecf' });
  for (const [m, s] of Object.entries(results.popularity ?? {})) rows.push({ model: 'popularity', metric: m, value: s.mean, source: 'vaecf baseline' });
  for (const [m, v] of Object.entries(published ?? {})) if (results.test[m]) rows.push({ model: 'published', metric: m, value: v, source: 'published' });
  return rows;
}

function metricsTable(results: TrainResults, published?: Record<string, number>): string {
  const metrics = Object.keys(results.test);
  const row = (name: string, cells: string[]): string => `<tr><th>${escape(name)}</th>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  return `<table><tr><th></th>${metrics.map((m) => `<th>${escape(m)}</th>`).join('')}</tr>
${row('vaecf', metrics.map((m) => `${results.test[m].mean.toFixed(4)} ± ${results.test[m].stderr.toFixed(4)}`))}
${results.popularity ? row('popularity', metrics.map((m) => results.popularity[m] ? results.popularity[m].mean.toFixed(4) : '')) : ''}
${published ? row('published', metrics.map((m) => (published[m] !== undefined ? published[m].toFixed(3) : ''))) : ''}</table>`;
}

export async function writeReport(dir: string): Promise<ReportResult> {
  if (!fs.existsSync(dir)) throw new VaecfInputError(`${dir}: no such run, beta study or sweep folder`);
  const sections: string[] = [];
  const svgs: string[] = [];
  const specs: string[] = [];
  let plotsSkipped: string | undefined;
  const addSvg = async (name: string, spec: Record<string, unknown>, caption: string): Promise<void> => {
    let svg: string;
    try {
      svg = await renderSvg(spec);
    } catch (e) {
      if ((e as { code?: string }).code !== 'ERR_VAECF_NO_PLOTTING') throw e;
      // No plotting packages: the spec, for any Vega-Lite renderer (vega-embed, the online editor, vl2svg).
      plotsSkipped = PLOTTING_MISSING;
      const specFile = path.join(dir, name.replace(/\.svg$/, '.vl.json'));
      fs.writeFileSync(specFile, `${JSON.stringify({ $schema: 'https://vega.github.io/schema/vega-lite/v5.json', ...spec }, null, 2)}\n`);
      specs.push(specFile);
      sections.push(`<figure class="plot" id="${name.replace('.svg', '')}"><p>Not drawn: ${escape(PLOTTING_MISSING)}. ` +
        `Its Vega-Lite spec is <a href="${escape(path.basename(specFile))}">${escape(path.basename(specFile))}</a>.</p><figcaption>${escape(caption)}</figcaption></figure>`);
      return;
    }
    const file = path.join(dir, name);
    fs.writeFileSync(file, svg);
    svgs.push(file);
    sections.push(`<figure class="plot" id="${name.replace('.svg', '')}">${svg}<figcaption>${escape(caption)}</figcaption></figure>`);
  };
  const config = readJson<Record<string, unknown>>(path.join(dir, 'config.json'));
  const published = (config?.published as Record<string, number> | undefined) ?? undefined;
  let title = `vaecf report: ${path.basename(path.resolve(dir))}`;

  const history = readHistory(dir);
  const results = readJson<TrainResults>(path.join(dir, 'results.json'));
  const beta = readJson<{ metric: string; points: Array<{ beta: number; score: number }>; bestBeta: number; final?: TrainResults; anneal?: TrainResults }>(path.join(dir, 'beta-study.json'));
  const sweepCsv = path.join(dir, 'all_results.csv');

  if (history.length) {
    title = `vaecf run ${config?.name ?? path.basename(path.resolve(dir))}`;
    await addSvg('curves.svg', trainingCurvesSpec(history, 'loss, KL, beta and validation per epoch'), `${history.length} epochs`);
  }
  if (results) {
    sections.push(`<h2>Test metrics</h2>${metricsTable(results, published)}`);
    await addSvg('comparison.svg', comparisonSpec(comparisonRows(results, published)), 'test metrics beside popularity and the published numbers');
  }
  if (beta) {
    title = `vaecf beta study: ${path.basename(path.resolve(dir))}`;
    await addSvg('beta-study.svg', betaStudySpec(beta.points, beta.metric, beta.bestBeta), `annealing to 1; the best beta is ${beta.bestBeta.toFixed(3)}`);
    const anneal = readHistory(path.join(dir, 'anneal'));
    if (anneal.length) await addSvg('anneal-curves.svg', trainingCurvesSpec(anneal, 'annealing run'), 'beta annealed to 1');
    if (beta.final) sections.push(`<h2>Retrained with the best beta</h2>${metricsTable(beta.final, published)}`);
  }
  if (fs.existsSync(sweepCsv)) {
    title = `vaecf sweep: ${path.basename(path.resolve(dir))}`;
    const [head, ...rows] = fs.readFileSync(sweepCsv, 'utf8').trim().split('\n').map((l) => l.split(','));
    sections.push(`<h2>Sweep (${rows.length} runs)</h2><table class="sweep"><tr>${head.map((h) => `<th>${escape(h)}</th>`).join('')}</tr>${rows
      .map((r) => `<tr>${r.map((c) => `<td>${escape(c)}</td>`).join('')}</tr>`).join('\n')}</table>`);
    const ndcgColumn = head.indexOf('test_ndcg@100');
    if (ndcgColumn >= 0) {
      const best = rows.reduce((b, r) => (Number(r[ndcgColumn]) > Number(b[ndcgColumn]) ? r : b), rows[0]);
      const bestHistory = readHistory(path.join(dir, best[0]));
      if (bestHistory.length) await addSvg('best-run-curves.svg', trainingCurvesSpec(bestHistory, `best run: ${best[0]}`), `best run ${best[0]}`);
    }
  }
  if (!sections.length) throw new VaecfInputError(`${dir}: nothing to report (no metrics.jsonl, results.json, beta-study.json or all_results.csv)`);
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}figure{margin:1.5em 0}figcaption{color:#555}</style></head>
<body><h1>${escape(title)}</h1>
${config ? `<details><summary>configuration</summary><pre>${escape(JSON.stringify(config, null, 2))}</pre></details>` : ''}
${sections.join('\n')}
<p><small>made by vaecf ${new Date().toISOString()}</small></p></body></html>`;
  const htmlFile = path.join(dir, 'report.html');
  fs.writeFileSync(htmlFile, html);
  return { html: htmlFile, svgs, specs, ...(plotsSkipped ? { plotsSkipped } : {}) };
}
