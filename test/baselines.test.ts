// Popularity and EASE honour the same recommend options as the neural models.
import test from 'ava';

import { EASE, Popularity } from '../src/index';
import { twoGroups } from './helpers';

const ids = Array.from({ length: 20 }, (_, i) => `item${i}`);

for (const make of [() => new Popularity(), () => new EASE({ lambda: 10, threads: 1 })]) {
  test(`${make().kind}: allow and deny lists, unknown ids reported`, async (t) => {
    const model = make();
    await model.fit({ train: twoGroups(), itemIds: ids });
    const [plain] = await model.recommend([['item0', 'nope']], { k: 3 });
    t.deepEqual(plain.unknownItems, ['nope']);
    t.is(plain.items.length, 3);
    const [denied] = await model.recommend([['item0']], { k: 3, exclude: plain.items });
    t.false(denied.items.some((id) => plain.items.includes(id)));
    const [allowed] = await model.recommend([['item0']], { k: 5, allow: ['item7', 'item13'] });
    t.deepEqual([...allowed.items].sort(), ['item13', 'item7']);
    model.dispose();
  });
}
