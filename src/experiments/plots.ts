// Plots as SVG, rendered offline by Vega-Lite (no browser, no canvas): training curves, the beta study,
// our numbers beside baselines and published ones.
// Vega and Vega-Lite are loaded on the first plot, not at `require('vaecf')` (they are most of its
// import time, and only reports use them).
// They are optional peer dependencies (41 MiB that only reports use): without them a report keeps each
// plot's Vega-Lite spec and says how to render it.
let plotting: { vega: typeof import('vega'); vegaLite: typeof import('vega-lite') } | undefined;

/** Why plots cannot be drawn here, with what to install; thrown by renderSvg (`code`: 'ERR_VAECF_NO_PLOTTING'). */
export const PLOTTING_MISSING = 'plots need the optional packages vega and vega-lite (npm install vega@5 vega-lite@5)';

function loadPlotting(): NonNullable<typeof plotting> {
  if (!plotting) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      plotting = { vega: require('vega') as typeof import('vega'), vegaLite: require('vega-lite') as typeof import('vega-lite') };
    } catch (e) {
      const err = new Error(`${PLOTTING_MISSING}: ${(e as Error).message}`) as Error & { code: string };
      err.code = 'ERR_VAECF_NO_PLOTTING';
      throw err;
    }
  }
  return plotting;
}

type Spec = Record<string, unknown>;

export async function renderSvg(spec: Spec): Promise<string> {
  const { vega, vegaLite } = loadPlotting();
  const compiled = vegaLite.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v5.json', ...spec } as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

export interface EpochPoint {
  epoch: number;
  loss: number;
  nll: number;
  kl: number;
  beta: number;
  learningRate: number;
  validation?: Record<string, number>;
}

/** Loss, KL, beta and the validation metric against the epoch, one panel each. */
export function trainingCurvesSpec(history: EpochPoint[], title = 'training'): Spec {
  const rows: Array<{ epoch: number; series: string; value: number }> = [];
  for (const h of history) {
    rows.push({ epoch: h.epoch, series: 'loss', value: h.loss }, { epoch: h.epoch, series: 'KL', value: h.kl }, { epoch: h.epoch, series: 'beta', value: h.beta });
    for (const [k, v] of Object.entries(h.validation ?? {})) rows.push({ epoch: h.epoch, series: `validation ${k}`, value: v });
  }
  return {
    title,
    data: { values: rows },
    facet: { row: { field: 'series', type: 'nominal', title: null } },
    spec: {
      width: 520,
      height: 110,
      mark: { type: 'line', point: history.length <= 40 },
      encoding: {
        x: { field: 'epoch', type: 'quantitative' },
        y: { field: 'value', type: 'quantitative', scale: { zero: false }, title: null },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/** The paper's Figure 2: validation NDCG against beta while beta is annealed, and the chosen beta. */
export function betaStudySpec(points: Array<{ beta: number; score: number }>, metric: string, best: number): Spec {
  return {
    title: `validation ${metric} while beta anneals (best beta ${best.toFixed(3)})`,
    width: 520,
    height: 260,
    layer: [
      { data: { values: points }, mark: { type: 'line', point: true }, encoding: { x: { field: 'beta', type: 'quantitative' }, y: { field: 'score', type: 'quantitative', scale: { zero: false }, title: metric } } },
      { data: { values: [{ beta: best }] }, mark: { type: 'rule', color: 'firebrick', strokeDash: [4, 4] }, encoding: { x: { field: 'beta', type: 'quantitative' } } },
    ],
  };
}

/** Bars: our test metrics beside baselines and published numbers. */
export function comparisonSpec(rows: Array<{ model: string; metric: string; value: number; source: string }>): Spec {
  return {
    title: 'test metrics: ours, baselines, published',
    data: { values: rows },
    facet: { column: { field: 'metric', type: 'nominal', title: null } },
    spec: {
      width: 170,
      height: 220,
      mark: 'bar',
      encoding: {
        x: { field: 'model', type: 'nominal', sort: null, title: null, axis: { labelAngle: -40 } },
        y: { field: 'value', type: 'quantitative', title: null },
        color: { field: 'source', type: 'nominal' },
        tooltip: [{ field: 'model' }, { field: 'value', format: '.4f' }, { field: 'source' }],
      },
    },
  };
}
