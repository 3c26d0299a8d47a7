// Open data in the browser: the list's « Télécharger » links export what the list shows, and
// « Importer un tableur » previews a sheet (problems by line and column, linked to the
// column's select), takes a column re-chosen, then imports everything at once.
//
// Called by web.test.mjs with `t` = { step, check, pa, A, shotBoth, axeCheck, waitText,
// noSidewaysScroll }.

const SHEET = [
  'Intitulé;Commune;Année de livraison;Type de travaux;Coût;Remarques',
  'Halle en bois du marché;Ambert;mars 2019;Rehabilitaton;1,2 M€;"à revoir',
  'avec la mairie"',
  'Maison du parc;Thiers;2020;Extension;350 k€;',
].join('\r\n') + '\r\n';

export async function run(t) {
  const { step, check, pa, A, shotBoth, axeCheck, waitText, noSidewaysScroll } = t;

  await step('open data: the list\'s download links export the current filters', async () => {
    await pa.goto(`${A}/?kind=realisation`);
    const href = await pa.locator('nav.downloads a', { hasText: 'CSV (;)' }).getAttribute('href');
    check(href === '/export.csv?kind=realisation&separateur=%3B', `CSV (;) link is ${href}`);
    const csv = await pa.request.get(`${A}${href}`);
    check(csv.ok(), `export: ${csv.status()}`);
    check(csv.headers()['content-type'] === 'text/csv; charset=utf-8', csv.headers()['content-type']);
    check(/attachment; filename="fiches-atelier-pointvirgule.csv"/.test(csv.headers()['content-disposition']), csv.headers()['content-disposition']);
    const text = await csv.text();
    check(text.startsWith('\ufeffref;type;titre;'), text.slice(0, 80));
    check(text.includes('École en pisé de Thiers') && !text.includes('Balade des toits'), 'only the réalisations');
    // Words go through the search index, as the list does.
    const words = await (await pa.request.get(`${A}/export.jsonl?q=pis%C3%A9`)).text();
    check(words.includes('École en pisé de Thiers') && !words.includes('Guide des enduits'), `search export: ${words.slice(0, 200)}`);
    const geo = await (await pa.request.get(`${A}/export.geojson?kind=realisation`)).json();
    check(geo.type === 'FeatureCollection' && geo.features.every((f) => f.properties.type === 'realisation'), 'GeoJSON of réalisations');
  });

  await step('import a spreadsheet: preview with its problems, a column re-chosen, all rows imported', async () => {
    await pa.goto(`${A}/`);
    await pa.locator('a', { hasText: 'Importer un tableur' }).click();
    await waitText(pa, 'h1', 'Importer un tableur');
    await axeCheck(pa, 'the import form');
    await pa.locator('#fichier').setInputFiles({ name: 'tableur.csv', mimeType: 'text/csv', buffer: Buffer.from(SHEET) });
    await pa.locator('button', { hasText: 'Voir l\'aperçu' }).click();
    await waitText(pa, '#problemes', 'Un problème à corriger');
    await waitText(pa, '#problemes', 'Ligne 2, colonne D « Type de travaux »');
    await waitText(pa, '#problemes', 'rehabilitation');
    check(await pa.locator('button[value="importer"]').count() === 0, 'no import button while a problem remains');
    // The problem links to its column's select, which says why it is invalid.
    await pa.locator('#problemes a[href="#colonne-3"]').click();
    const described = await pa.locator('#colonne-3').getAttribute('aria-describedby');
    check(described === 'colonne-3-aide colonne-3-erreur', `aria-describedby ${described}`);
    await shotBoth(pa, '30-import-apercu');
    await axeCheck(pa, 'the import preview');
    await noSidewaysScroll(pa, 'the import preview');
    await pa.locator('#colonne-3').selectOption('ignorer');
    await pa.locator('button', { hasText: 'Vérifier à nouveau' }).click();
    await waitText(pa, 'main', 'aucun problème');
    await pa.locator('button', { hasText: 'Importer 2 fiches' }).click();
    await waitText(pa, '.notice', 'Import terminé : 2 fiches créées');
    await shotBoth(pa, '31-import-fait');
    await axeCheck(pa, 'the import result');
    await pa.goto(`${A}/?q=Halle`);
    await waitText(pa, '#resultats', 'Halle en bois du marché');
  });
}
