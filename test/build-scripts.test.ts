// The build scripts' knobs for libraries built from source (the glibc 2.28 prebuild of
// .github/workflows/platforms.yml): gyp-flags takes oneDNN, OpenBLAS and header folders from the
// environment and names a wrong path; bundle-libs takes its symbol-version ceilings and rejects a bad one.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import test from 'ava';

import { tempDir } from './helpers';

const SCRIPTS = path.join(__dirname, '..', '..', 'scripts');
const linuxX64 = process.platform === 'linux' && process.arch === 'x64';
const onLinuxX64 = linuxX64 ? test : test.skip;
if (!linuxX64) test('skipped: the build scripts are checked on linux-x64 only', (t) => t.pass());

function gypFlags(what: string, env: Record<string, string>): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [path.join(SCRIPTS, 'gyp-flags.js'), what], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr };
}

onLinuxX64('gyp-flags links a oneDNN prefix given by VAECF_ONEDNN_DIR and adds its headers and VAECF_INCLUDE_DIRS', (t) => {
  const prefix = tempDir('vaecf-onednn-');
  fs.mkdirSync(path.join(prefix, 'include', 'oneapi', 'dnnl'), { recursive: true });
  fs.writeFileSync(path.join(prefix, 'include', 'oneapi', 'dnnl', 'dnnl.hpp'), '');
  fs.mkdirSync(path.join(prefix, 'lib64'));
  fs.writeFileSync(path.join(prefix, 'lib64', 'libdnnl.so'), '');
  const env = { VAECF_ONEDNN_DIR: prefix, VAECF_INCLUDE_DIRS: ['/opt/a', '/opt/b'].join(path.delimiter) };
  const libraries = gypFlags('libraries', env);
  t.is(libraries.status, 0, libraries.err);
  t.true(libraries.out.split(' ').includes(`-L${path.join(prefix, 'lib64')}`), libraries.out);
  t.true(libraries.out.split(' ').includes('-ldnnl'), libraries.out);
  const includes = gypFlags('includes', env).out.split(' ');
  t.true(includes.includes(path.join(prefix, 'include')) && includes.includes('/opt/a') && includes.includes('/opt/b'), includes.join(' '));
  t.is(gypFlags('defines', env).out.split(' ').includes('VAECF_HAVE_ONEDNN'), true);
});

onLinuxX64('gyp-flags names a VAECF_ONEDNN_DIR or VAECF_OPENBLAS_STATIC that does not hold what it should', (t) => {
  const empty = tempDir('vaecf-empty-');
  const dnnl = gypFlags('libraries', { VAECF_ONEDNN_DIR: empty });
  t.is(dnnl.status, 1);
  t.regex(dnnl.err, new RegExp(`VAECF_ONEDNN_DIR=${empty.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has no include/oneapi/dnnl/dnnl.hpp`));
  const blas = gypFlags('libraries', { VAECF_OPENBLAS_STATIC: path.join(empty, 'libopenblas.a') });
  t.is(blas.status, 1);
  t.regex(blas.err, /VAECF_OPENBLAS_STATIC names .*libopenblas\.a, which does not exist/);
});

onLinuxX64('bundle-libs rejects a symbol-version ceiling that is not a version', (t) => {
  const r = spawnSync(process.execPath, [path.join(SCRIPTS, 'bundle-libs.js'), tempDir('vaecf-bundle-')], {
    encoding: 'utf8', env: { ...process.env, VAECF_GLIBC_CEILING: 'latest' },
  });
  t.is(r.status, 1);
  t.regex(r.stderr, /VAECF_GLIBC_CEILING=latest: expected a version such as 2\.28/);
});
