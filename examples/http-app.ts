// A small web app that recommends: loads a saved model, serves POST /recommend, GET /health and
// GET /model, and stops gracefully on Ctrl-C.
// usage: node dist/examples/http-app.js model.safetensors [port]
import { createRecommendServer, listen, loadModel, shutdown } from '../src/index';

async function main(): Promise<void> {
  const [file, port = '8080'] = process.argv.slice(2);
  if (!file) throw new Error('usage: http-app MODEL_FILE [PORT]');
  const model = await loadModel(file);
  const server = createRecommendServer(model, { metadata: { items: model.numItems } });
  const address = await listen(server, Number(port));
  console.log(`listening on http://127.0.0.1:${address.port}`);
  console.log(`try: curl -s localhost:${address.port}/recommend -d '{"items": [${model.itemIds.slice(0, 3).map((id) => JSON.stringify(id)).join(', ')}], "k": 5}'`);
  const stop = async (): Promise<void> => {
    await shutdown(server);
    model.dispose();
    console.log('stopped');
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
