// `vaecf fetch DATASET`: download, verify, extract; prints where the data is.
import { fetchDataset, ProgressLine } from '../index';

export async function runFetch(name: string, dir: string, log: (s: string) => void): Promise<void> {
  const bar = new ProgressLine();
  const r = await fetchDataset(name, dir, {
    log,
    onProgress: (got, total) => bar.update(name, Math.round(got / 1e6), total ? Math.round(total / 1e6) : Math.round(got / 1e6), 'MB'),
  });
  bar.clear();
  log(`${name}: ${r.data}${r.downloaded ? '' : ' (already here)'}`);
  log(`next: vaecf prepare ${r.data} --out ${dir}/${name}-prepared`);
}
