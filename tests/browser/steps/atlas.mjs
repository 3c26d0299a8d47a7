// Browser steps of the atlas (/atlas): reached from the list with its search kept, drawn at
// 1280 and 390 px, accessible (axe-core), a marker reached with Tab and opened with Enter, and
// the way back to the list. Called by web.test.mjs with what it shares (`t`).

export async function run(t) {
  const { step, check, pa, shotBoth, axeCheck, waitText, A } = t;
  const thiers = 'a[aria-label="École en pisé de Thiers, Thiers"]';

  await step('the list opens its search on the atlas: a marker per place, a count per département', async () => {
    await pa.goto(`${A}/?q=pis%C3%A9`);
    await waitText(pa, '#resultats', 'École en pisé de Thiers');
    await pa.locator('#resultats a', { hasText: "Voir sur l'atlas" }).click();
    await pa.waitForURL(/\/atlas\?q=pis%C3%A9$/);
    await waitText(pa, 'h1', 'Atlas des fiches');
    await waitText(pa, '.atlas-filters', 'Recherche : « pisé »');
    check(await pa.locator(thiers).count() === 1, 'no marker for the school in Thiers');
    await waitText(pa, 'details[data-departement="63"] summary', 'Puy-de-Dôme (63)');
    await waitText(pa, 'details[data-departement="63"]', 'École en pisé de Thiers');
    // The shading counts what the list counts.
    const counts = await pa.evaluate(() => [
      document.querySelector('path[data-departement="63"]').getAttribute('data-count'),
      document.querySelector('details[data-departement="63"]').getAttribute('data-count'),
    ]);
    check(counts[0] === counts[1] && counts[0] !== '0', `Puy-de-Dôme: map ${counts[0]}, list ${counts[1]}`);
    await waitText(pa, '.atlas-credit', 'Licence Ouverte / Etalab');
    await axeCheck(pa, 'the atlas of a search');
    // The whole corpus: the Cantal counts the walk in Saint-Flour, which has no coordinates.
    await pa.goto(`${A}/atlas`);
    await waitText(pa, 'details[data-departement="15"]', 'Balade des toits de lauze');
    check(await pa.locator('path[data-departement="15"]').getAttribute('data-count') !== '0', 'the Cantal is not shaded');
    await shotBoth(pa, '30-atlas');
    await axeCheck(pa, 'the atlas');
  });

  await step('at 390 px the map fits the screen and the list comes below it', async () => {
    await pa.setViewportSize({ width: 390, height: 844 });
    const layout = await pa.evaluate(() => {
      const map = document.querySelector('.atlas-map svg').getBoundingClientRect();
      const list = document.querySelector('.atlas-list').getBoundingClientRect();
      return { scroll: document.documentElement.scrollWidth, mapRight: map.right, mapBottom: map.bottom, listTop: list.top };
    });
    await pa.setViewportSize({ width: 1280, height: 900 });
    check(layout.scroll <= 390, `the page scrolls sideways (${layout.scroll} px)`);
    check(layout.mapRight <= 390, `the map overflows (${layout.mapRight} px)`);
    check(layout.listTop >= layout.mapBottom, 'the list is not below the map');
  });

  await step('a marker is reached with Tab and Enter opens its resource; the atlas leads back to the list', async () => {
    await pa.goto(`${A}/atlas?q=pis%C3%A9`);
    // From the last link before the map, Tab goes through the markers in reading order.
    await pa.locator('.atlas-filters a').last().focus();
    let reached = false;
    for (let i = 0; i < 30 && !reached; i++) {
      await pa.keyboard.press('Tab');
      reached = await pa.evaluate((s) => document.activeElement === document.querySelector(s), thiers);
    }
    check(reached, 'Tab never reached the marker of the school in Thiers');
    await pa.keyboard.press('Enter');
    await waitText(pa, 'h1', 'École en pisé de Thiers');
    await pa.goBack();
    await pa.locator('a', { hasText: '← Revenir à la liste' }).click();
    await pa.waitForURL(/\/\?q=pis%C3%A9$/);
    await waitText(pa, '#resultats', 'École en pisé de Thiers');
  });
}
