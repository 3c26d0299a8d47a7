// Publication numérique in a real browser: the editor (create, add sections, « Monter » by
// keyboard, cover from the médiathèque) at 1280 and 390 px with axe-core; the preview; the
// single-file export opened from disk with the network off, its images shown and its
// screenshot equal to the preview's; the print stylesheet and an A4 PDF.
import { join } from 'node:path';

export async function run(t) {
  const { step, check, pa, A, shotBoth, axeCheck, waitText, opts } = t;
  let base = null; // the editor's path
  let exported = null; // the single file on disk

  await step('a publication is assembled in its editor, without script, keyboard only for « Monter »', async () => {
    await pa.goto(`${A}/publications`);
    await waitText(pa, 'h1', 'Publications numériques');
    await pa.locator('#nouvelle-publication-title').fill('Bâtir en terre');
    await pa.locator('#nouvelle-publication-subtitle').fill('Le Livradois et ses savoir-faire');
    await pa.locator('#nouvelle-publication-introduction').fill('Trois offices montrent ce qui se construit avec la terre.\n\nUne sélection pour les élus.');
    await pa.locator('button', { hasText: 'Créer la publication' }).click();
    await waitText(pa, '.notice', 'La publication a été créée');
    base = new URL(pa.url()).pathname;
    await pa.locator('#ajout-fiche-fiche').fill('École en pisé de Thiers');
    await pa.locator('button', { hasText: 'Ajouter la fiche' }).click();
    await waitText(pa, '.notice', 'Section ajoutée');
    await pa.locator('#ajout-texte-titre').fill('Pour aller plus loin');
    await pa.locator('#ajout-texte-texte').fill('Le CAUE conseille gratuitement les particuliers.');
    await pa.locator('button', { hasText: 'Ajouter le texte' }).click();
    await waitText(pa, '.notice', 'Section ajoutée');
    await pa.locator('#ajout-carte-titre').fill('Où voir la terre crue');
    await pa.locator('#ajout-carte-carte').fill('sector=terre');
    await pa.locator('button', { hasText: 'Ajouter la carte' }).click();
    await waitText(pa, 'ol.sections', 'Où voir la terre crue');
    // « Monter » the map by keyboard: focus its button, press Enter.
    const up = pa.getByRole('button', { name: 'Monter « Où voir la terre crue »' });
    await up.focus();
    await pa.keyboard.press('Enter');
    await waitText(pa, '.notice', 'Section déplacée');
    const order = await pa.locator('ol.sections li .section-line strong').allTextContents();
    check(JSON.stringify(order) === JSON.stringify(['École en pisé de Thiers', 'Où voir la terre crue', 'Pour aller plus loin']), `order ${JSON.stringify(order)}`);
    // The cover: a photo of the médiathèque, named by its alt text.
    const cover = pa.locator('#presentation-cover');
    const option = await cover.locator('option', { hasText: 'Façade en pisé' }).first().getAttribute('value');
    await cover.selectOption(option);
    await pa.locator('button', { hasText: 'Enregistrer' }).first().click();
    await waitText(pa, '.notice', 'Modifications enregistrées');
    await axeCheck(pa, 'the publication editor at 1280 px');
    await pa.setViewportSize({ width: 390, height: 844 });
    await axeCheck(pa, 'the publication editor at 390 px');
    const wide = await pa.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 390, `the editor scrolls sideways at 390 px (${wide} px)`);
    await pa.setViewportSize({ width: 1280, height: 900 });
    await shotBoth(pa, '30-publication-editeur');
    await pa.goto(`${A}/publications`);
    await axeCheck(pa, 'the publications page');
  });

  await step('the single-file export opens from disk with the network off and looks like the preview', async () => {
    await pa.goto(`${A}${base}/apercu`);
    await waitText(pa, 'h1', 'Bâtir en terre');
    await axeCheck(pa, 'the preview');
    const previewShot = await pa.screenshot({ path: join(opts.shots, '31-publication-apercu.png'), fullPage: true });
    await pa.goto(`${A}${base}`);
    await pa.locator('.publication-head input[value=html]').check();
    const [download] = await Promise.all([
      pa.waitForEvent('download'),
      pa.locator('.publication-head button', { hasText: 'Exporter' }).click(),
    ]);
    check(download.suggestedFilename() === 'batir-en-terre.html', `file name ${download.suggestedFilename()}`);
    exported = join(opts.shots, 'publication-batir-en-terre.html');
    await download.saveAs(exported);

    const browser = pa.context().browser();
    const offline = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'fr-FR', offline: true });
    await offline.setOffline(true);
    const requests = [];
    const po = await offline.newPage();
    po.on('request', (r) => { if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) requests.push(r.url()); });
    await po.goto(`file://${exported}`);
    await waitText(po, 'h1', 'Bâtir en terre');
    const images = await po.evaluate(() => [...document.images].map((i) => ({ alt: i.alt, w: i.naturalWidth, done: i.complete })));
    check(images.length >= 2, `images ${JSON.stringify(images)}`);
    check(images.every((i) => i.done && i.w > 0 && i.alt.length > 0), `an image did not show offline: ${JSON.stringify(images)}`);
    check(requests.length === 0, `the export asked the network for ${requests.join(', ')}`);
    check(await po.evaluate(() => document.documentElement.lang) === 'fr', 'lang');
    check(await po.locator('main').count() === 1 && await po.locator('nav[aria-label=Sommaire]').count() === 1, 'landmarks');
    await axeCheck(po, 'the exported publication');
    const fileShot = await po.screenshot({ path: join(opts.shots, '32-publication-export-hors-ligne.png'), fullPage: true });
    check(Buffer.compare(previewShot, fileShot) === 0, 'the exported file does not look like the preview (compare 31-… and 32-…png)');

    // Print: the table of contents goes, each section starts a page, A4.
    await po.emulateMedia({ media: 'print' });
    const print = await po.evaluate(() => ({
      toc: getComputedStyle(document.querySelector('nav.toc')).display,
      breaks: [...document.querySelectorAll('section.section')].map((s) => getComputedStyle(s).breakBefore),
    }));
    check(print.toc === 'none', `the table of contents prints (${print.toc})`);
    check(print.breaks.length === 3 && print.breaks.every((b) => b === 'page'), `page breaks ${JSON.stringify(print.breaks)}`);
    await po.screenshot({ path: join(opts.shots, '33-publication-impression.png'), fullPage: true });
    const pdf = await po.pdf({ preferCSSPageSize: true, printBackground: true, path: join(opts.shots, '34-publication.pdf') });
    const pages = (pdf.toString('latin1').match(/\/Type\s*\/Page[^s]/g) || []).length;
    check(pages >= 4, `the PDF has ${pages} pages (cover and intro, then one per section)`);
    const box = pdf.toString('latin1').match(/\/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)/);
    check(box && Math.abs(Number(box[1]) - 595) < 2 && Math.abs(Number(box[2]) - 842) < 2, `not A4: ${box && box.slice(1)}`);
    await offline.close();

    await pa.goto(`${A}${base}/regenerer`);
    await waitText(pa, '.since', "Rien n'a changé depuis");
    await axeCheck(pa, 'Régénérer');
  });
}
