// Real-browser test of the Atelier web app, started by tests/integration/web_browser.rs with
// two servers (office A = caue-63, office B = caue-15) linked by a pausable test exchange.
//
//   node web.test.mjs --a URL --b URL --a-login URL --b-login URL --control URL --a-dir DIR
//                     --shots DIR --photos DIR
//
// --a-login and --b-login are one-time login links, as `atelier demo` prints them.
//
// Drives Debian's chromium (never a downloaded browser) through playwright-core. Stops at the
// first failing step, prints "N passed, N failed", exits non-zero on failure.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as atlasSteps from './steps/atlas.mjs';
import { run as publicationSteps } from './steps/publication.mjs';
import { run as opendataSteps } from './steps/opendata.mjs';

const opts = {};
for (let i = 2; i < process.argv.length; i += 2) opts[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
for (const k of ['a', 'b', 'a-login', 'b-login', 'control', 'a-dir', 'shots', 'photos']) {
  if (!opts[k]) { console.error(`missing --${k}`); process.exit(2); }
}
const A = opts.a, B = opts.b;
const WAIT = 15000;

let passed = 0, failed = 0;
const pageErrors = [];

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    throw e;
  }
}

function check(cond, message) { if (!cond) throw new Error(message); }

async function control(what) {
  const r = await fetch(`${opts.control}/${what}`);
  check(r.ok, `control ${what}: ${r.status}`);
}

async function shot(page, name, full = true) {
  await page.screenshot({ path: join(opts.shots, `${name}.png`), fullPage: full });
}

// The page at desktop width (1280 px) and at a phone's (390 px), then back to desktop.
async function shotBoth(page, name, full = true) {
  await shot(page, `${name}-1280`, full);
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, `${name}-390`, full);
  await page.setViewportSize({ width: 1280, height: 900 });
}

// axe-core's WCAG 2.1 A and AA rules on the page as it is; any violation fails the step.
const AXE = readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
async function axeCheck(page, what) {
  if (!(await page.evaluate(() => !!window.axe))) await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  const found = result.violations.map((v) => `  ${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.slice(0, 4).map((n) => n.target.join(' ')).join('\n    ')}`);
  check(found.length === 0, `${what}: axe-core found:\n${found.join('\n')}`);
}

// A photo the Rust test drew, as a file to choose.
function photo(name) {
  return { name, mimeType: 'image/jpeg', buffer: readFileSync(join(opts.photos, name)) };
}

// A document as the médiathèque checks it (header and end), and a HEIC photo's first bytes.
const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
const HEIC = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypheic\0\0\0\0mif1heic')]);

// Waits until the element's text contains `text` (or, with `absent`, no longer does).
async function waitText(page, selector, text, absent = false) {
  try {
    await page.waitForFunction(([s, t, a]) => {
      const el = document.querySelector(s);
      const has = !!el && el.textContent.includes(t);
      return a ? !has : has;
    }, [selector, text, absent], { timeout: WAIT });
  } catch (e) {
    const now = await page.evaluate((s) => document.querySelector(s)?.textContent?.slice(0, 400), selector);
    throw new Error(`${page.url()}: "${selector}" ${absent ? 'still contains' : 'never contained'} "${text}"; it shows: ${now}`);
  }
}

async function waitValue(page, selector, value) {
  try {
    await page.waitForFunction(([s, v]) => document.querySelector(s)?.value === v, [selector, value], { timeout: WAIT });
  } catch (e) {
    const now = await page.evaluate((s) => document.querySelector(s)?.value, selector);
    throw new Error(`${page.url()}: "${selector}" value never became ${JSON.stringify(value)}; it is ${JSON.stringify(now)}`);
  }
}

const SEED = [
  { ref: 'nav-1', kind: 'realisation', title: 'École en pisé de Thiers', office: 'caue-63', status: 'publie',
    summary: 'Une école de six classes en terre crue, construite avec les artisans du Livradois.',
    description: 'Le bâtiment reprend la technique locale du pisé.\n\nLes murs de 50 cm assurent le confort d\u2019été.',
    themes: ['equipements_publics'], sectors: ['terre'], axes: ['filieres_construction'], materials: ['pisé'],
    audiences: ['elus', 'maitres_ouvrage'],
    location: { commune: 'Thiers', insee: '63430', departement: '63', lat: 45.8564, lon: 3.5475 }, year: 2016,
    client: 'Commune de Thiers', designers: [{ role: 'architecte', name: 'Atelier Basalte' }],
    intervention: 'construction_neuve', building_type: 'equipement_scolaire', cost_eur_ht: 2600000, floor_area_m2: 940,
    links: [{ url: 'https://example.org/ecole-thiers', label: 'Dossier de presse' }] },
  { ref: 'nav-2', kind: 'action', title: 'Balade des toits de lauze', office: 'caue-15', status: 'a_relire',
    summary: 'Une balade commentée dans les villages de la Planèze.', themes: ['patrimoine', 'paysage'],
    sectors: ['pierre'], audiences: ['grand_public'], location: { commune: 'Saint-Flour', departement: '15' },
    action_type: 'balade', dates: { start: '2024-06-15' } },
  { ref: 'nav-3', kind: 'outil', title: 'Guide des enduits à la chaux', office: 'caue-63', status: 'publie',
    summary: 'Fiches pratiques pour restaurer les façades anciennes.', sectors: ['mineraux_liants'],
    themes: ['patrimoine', 'energie_renovation'], tool_type: 'guide', year: 2021 },
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
});
// One context per office: separate cookies, as two people on two computers.
const ctxA = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'fr-FR', timezoneId: 'Europe/Paris' });
const ctxB = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'fr-FR', timezoneId: 'Europe/Paris' });
const pa = await ctxA.newPage();
const pb = await ctxB.newPage();
for (const [p, who] of [[pa, 'A'], [pb, 'B']]) {
  p.on('pageerror', (e) => pageErrors.push(`${who}: ${e.message}`));
  p.setDefaultTimeout(WAIT);
}

let id = null; // bare id of the resource created in the browser
const created = 'Réhabilitation d\u2019une grange en pisé à Billom';
const original = 'Une grange du XIXe siècle devient une salle associative.';

try {
  await step('a browser gets in only through the one-time link, which works once', async () => {
    const stranger = await browser.newContext({ locale: 'fr-FR' });
    const ps = await stranger.newPage();
    const denied = await ps.goto(`${A}/`);
    check(denied.status() === 401, `without login: ${denied.status()}`);
    await waitText(ps, 'h1', 'Connexion nécessaire');
    check((await stranger.cookies()).length === 0, 'a cookie was handed out without login');
    await pa.goto(opts['a-login']);
    check(pa.url() === `${A}/`, `after login A is at ${pa.url()}`);
    await pa.locator('#resultats').waitFor();
    await pb.goto(opts['b-login']);
    check(pb.url() === `${B}/`, `after login B is at ${pb.url()}`);
    const cookie = (await ctxA.cookies()).find((c) => c.name.startsWith('atelier_'));
    check(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', `session cookie ${JSON.stringify(cookie)}`);
    const replay = await ps.goto(opts['a-login']);
    check(replay.status() === 401, `the link worked twice: ${replay.status()}`);
    await waitText(ps, '.lead', 'déjà servi');
    await shot(ps, '00-connexion');
    await stranger.close();
  });

  await step('the CLI contract: server.json and the token-protected API', async () => {
    const server = JSON.parse(readFileSync(join(opts['a-dir'], 'server.json'), 'utf8'));
    check(server.url === A, `server.json url ${server.url} != ${A}`);
    check(/^[0-9a-f]{64}$/.test(server.token), 'token is not 64 hex digits');
    check(Number.isInteger(server.pid), 'pid missing');
    const denied = await fetch(`${A}/api/resources`);
    check(denied.status === 401, `without token: ${denied.status}`);
    check((await denied.json()).error.includes('jeton'), '401 message is not French');
    const r = await fetch(`${A}/api/import`, {
      method: 'POST', headers: { Authorization: `Bearer ${server.token}` },
      body: SEED.map((x) => JSON.stringify(x)).join('\n') + '\n',
    });
    const answer = await r.text();
    check(r.ok, `import: ${r.status} ${answer}`);
    const report = JSON.parse(answer);
    check(report.created === 3, `import report ${JSON.stringify(report)}`);
    await control('idle');
  });

  await step('both offices list the resources, connected to the relay', async () => {
    await pa.goto(`${A}/`);
    await pb.goto(`${B}/`);
    for (const p of [pa, pb]) {
      await waitText(p, '#resultats', 'École en pisé de Thiers');
      await waitText(p, '#resultats', 'Balade des toits de lauze');
      await p.locator('#sync[data-kind=connecte]').waitFor();
    }
    check((await pb.locator('.brand .office').textContent()).includes('CAUE du Cantal'), 'office B name');
    await shot(pa, '01-liste');
  });

  await step('filters are checkboxes with French labels', async () => {
    await pa.locator('label.option', { hasText: 'Action de médiation' }).click();
    await pa.waitForURL(/kind=action/);
    await waitText(pa, '#resultats', 'Balade des toits de lauze');
    await waitText(pa, '#resultats', 'École en pisé', true);
    await pa.locator('label.option', { hasText: 'Pierre' }).waitFor();
    await shot(pa, '02-liste-filtree');
    await pa.locator('#q').fill('chaux');
    await pa.goto(`${A}/?q=chaux`);
    await waitText(pa, '#resultats', 'Guide des enduits à la chaux');
  });

  await step('search as you type: results, facet counts and the address follow each letter, no Enter', async () => {
    await pa.goto(`${A}/`);
    await waitText(pa, '#resultats .count', '(3 fiches)');
    const box = pa.locator('#q');
    await box.click();
    // Slower than the debounce: each letter sends its own request, the last answer wins.
    await box.pressSequentially('pise', { delay: 230 });
    await waitText(pa, '#resultats .count', '(1 fiche)');
    await waitText(pa, '#resultats', 'École en pisé de Thiers');
    await waitText(pa, '#resultats', 'Balade des toits de lauze', true);
    await waitText(pa, '#resultats mark', 'pisé');
    await pa.waitForURL((u) => u.pathname === '/' && u.searchParams.get('q') === 'pise');
    await waitText(pa, '#resultats-annonce', '1 fiche trouvée');
    const caret = await box.evaluate((el) => ({ focused: document.activeElement === el, at: el.selectionStart, value: el.value }));
    check(caret.focused && caret.at === 4 && caret.value === 'pise', `the search box lost focus or caret: ${JSON.stringify(caret)}`);
    // Facet counts are those of the results: only the pisé school's sector is left.
    await waitText(pa, '#facettes [data-facet=sector]', 'Terre crue (1)');
    check(await pa.locator('#f-sector-pierre').count() === 0, 'the facets still count the whole corpus');
    await shot(pa, '02b-recherche-instantanee');
    // Ticking a box keeps the query; both are in the address, and a reload shows the same.
    await pa.locator('label.option', { hasText: 'Terre crue' }).click();
    await pa.waitForURL((u) => u.searchParams.get('q') === 'pise' && u.searchParams.getAll('sector').includes('terre'));
    check(await pa.locator('#f-sector-terre').isChecked(), 'the ticked box was unticked by the update');
    // A new query under the same filter: nothing, but the other sectors say where to look.
    await box.press('Control+A');
    await box.pressSequentially('lauze', { delay: 30 });
    await waitText(pa, '#resultats', 'Aucune fiche ne correspond à « lauze »');
    await waitText(pa, '#facettes [data-facet=sector]', 'Pierre (1)');
    await pa.waitForURL((u) => u.searchParams.get('q') === 'lauze' && u.searchParams.get('sector') === 'terre');
    await pa.reload();
    await waitValue(pa, '#q', 'lauze');
    check(await pa.locator('#f-sector-terre').isChecked(), 'the address lost the filter');
    await waitText(pa, '#resultats', 'Aucune fiche ne correspond à « lauze »');
  });

  await step('the header search box of a resource page leads to the results', async () => {
    await pa.goto(`${A}/ressources/nav-3`);
    await waitText(pa, 'h1', 'Guide des enduits à la chaux');
    const box = pa.getByRole('searchbox', { name: 'Rechercher dans le corpus' });
    await box.fill('lauze');
    await box.press('Enter');
    await pa.waitForURL((u) => u.pathname === '/' && u.searchParams.get('q') === 'lauze');
    await waitText(pa, '#resultats', 'Balade des toits de lauze');
    await waitText(pa, '#resultats', 'Guide des enduits', true);
    await waitValue(pa, '#q', 'lauze');
    check(await pa.locator('header .header-search').count() === 0, 'two search boxes on the list page');
  });

  await step('a resource page shows every field in French, with a map', async () => {
    await pa.goto(`${A}/`);
    await pa.locator('a', { hasText: 'École en pisé de Thiers' }).click();
    await waitText(pa, 'h1', 'École en pisé de Thiers');
    for (const t of ['Terre crue', 'Équipement scolaire, petite enfance', 'Construction neuve', 'Atelier Basalte — Architecte', 'Élus', '940 m²', 'Licence Ouverte / Etalab']) {
      await waitText(pa, '#fiche', t);
    }
    check(await pa.locator('figure.map svg .pin').count() === 1, 'no pin on the map');
    await shot(pa, '03-fiche');
  });

  await step('photos and a PDF are added from the page, several at once, each with its own texts', async () => {
    await pa.goto(`${A}/ressources/nav-1`);
    await waitText(pa, '#mediatheque', 'Pas encore de photo');
    await pa.locator('#mediatheque a', { hasText: 'Ajouter des photos' }).click();
    await waitText(pa, 'h1', 'Photos et documents');
    await axeCheck(pa, 'the media page');
    await pa.locator('#fichiers').setInputFiles([
      photo('facade-sud.jpg'),
      photo('preau.jpg'),
      { name: 'notice-ecole.pdf', mimeType: 'application/pdf', buffer: PDF },
    ]);
    const blocks = pa.locator('#fichiers-choisis li');
    await blocks.nth(2).waitFor();
    check(await pa.locator('#textes-communs').isHidden(), 'the shared texts are still shown next to per-file texts');
    await blocks.nth(0).locator('[data-input=credit]').fill('Jeanne Martin / CAUE 63');
    await blocks.nth(0).locator('[data-input=caption]').fill('Façade sud, côté cour');
    await blocks.nth(0).locator('[data-input=alt]').fill('Façade en pisé ocre rythmée de piliers');
    await blocks.nth(1).locator('[data-input=credit]').fill('© CAUE 63');
    await blocks.nth(1).locator('[data-input=alt]').fill('Préau en bois vu depuis la cour');
    await blocks.nth(2).locator('[data-input=caption]').fill('Notice du projet');
    check(await blocks.nth(2).locator('[data-input=alt]').count() === 0, 'a PDF asks for an image description');
    await waitText(pa, '#fichiers-choisis', 'Qui détient les droits');
    await shotBoth(pa, '13-ajout-medias');
    await axeCheck(pa, 'the media page with three files chosen');
    let sentBy = null;
    pa.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/medias')) sentBy = r.resourceType(); });
    await pa.locator('#envoi-medias button[type=submit]').click();
    await pa.waitForURL(/medias_ajoutes=3/);
    check(sentBy === 'xhr', `the files were sent by ${sentBy}, not by the script (no progress)`);
    await waitText(pa, '.notice', '3 fichiers ajoutés');
    const imgs = pa.locator('#mediatheque ul.gallery img');
    check(await imgs.count() === 2, `${await imgs.count()} images in the gallery`);
    check(await imgs.nth(0).getAttribute('alt') === 'Façade en pisé ocre rythmée de piliers', 'alt text of the first photo');
    await waitText(pa, '#mediatheque', '© Jeanne Martin / CAUE 63');
    await waitText(pa, '#mediatheque', 'Façade sud, côté cour');
    await waitText(pa, '#mediatheque .documents', 'notice-ecole.pdf');
    await waitText(pa, '#mediatheque .documents', 'PDF');
    await pa.waitForFunction(() => Array.from(document.querySelectorAll('#mediatheque ul.gallery img')).every((i) => i.complete && i.naturalWidth > 0));
    await shotBoth(pa, '14-galerie');
    await axeCheck(pa, 'the resource page with its gallery');
  });

  await step('the full-size view opens, moves and closes with the keyboard', async () => {
    await pa.locator('#mediatheque a.media-open').first().focus();
    await pa.keyboard.press('Enter');
    await pa.locator('#visionneuse[open]').waitFor();
    await waitText(pa, '#visionneuse-position', 'Image 1 sur 2');
    await pa.waitForFunction(() => { const i = document.getElementById('visionneuse-image'); return i.complete && i.naturalWidth === 1600; });
    await waitText(pa, '#visionneuse-legende', '© Jeanne Martin / CAUE 63');
    await waitText(pa, '#visionneuse-legende', 'Télécharger l\u2019original');
    await shotBoth(pa, '15-vue-en-grand', false);
    await axeCheck(pa, 'the full-size view');
    await pa.keyboard.press('ArrowRight');
    await waitText(pa, '#visionneuse-position', 'Image 2 sur 2');
    check(await pa.locator('#visionneuse-image').getAttribute('alt') === 'Préau en bois vu depuis la cour', 'the second image has not its alt text');
    await pa.keyboard.press('Escape');
    await pa.locator('#visionneuse[open]').waitFor({ state: 'hidden' });
    check(await pa.evaluate(() => document.activeElement.classList.contains('media-open')), 'focus did not go back to the thumbnail');
  });

  await step('refused files: each reason next to its file, everything typed kept, nothing added', async () => {
    await pa.goto(`${A}/ressources/nav-1/medias`);
    await pa.locator('#fichiers').setInputFiles([
      { name: 'iphone.heic', mimeType: 'image/heic', buffer: HEIC },
      photo('preau.jpg'),
    ]);
    const blocks = pa.locator('#fichiers-choisis li');
    await blocks.nth(1).waitFor();
    await blocks.nth(0).locator('[data-input=credit]').fill('© CAUE 63');
    await blocks.nth(0).locator('[data-input=alt]').fill('Une photo de téléphone');
    await blocks.nth(1).locator('[data-input=credit]').fill('');
    await blocks.nth(1).locator('[data-input=caption]').fill('Légende à garder');
    await pa.locator('#envoi-medias button[type=submit]').click();
    await waitText(pa, '#erreurs', 'Rien n\'a été ajouté');
    await waitText(pa, '#fichiers-choisis li:nth-child(1)', 'HEIC');
    await waitText(pa, '#fichiers-choisis li:nth-child(1)', 'JPEG');
    await waitText(pa, '#fichiers-choisis li:nth-child(2)', 'crédit');
    await waitText(pa, '#fichiers-choisis li:nth-child(2)', 'description');
    check(await blocks.nth(1).locator('[data-input=caption]').inputValue() === 'Légende à garder', 'the typed caption was lost');
    check(await blocks.nth(1).locator('[data-input=credit]').getAttribute('aria-invalid') === 'true', 'the credit is not marked invalid');
    check(await pa.evaluate(() => document.activeElement.id === 'erreurs'), 'focus did not go to the error summary');
    await shotBoth(pa, '16-medias-refuses');
    await axeCheck(pa, 'the media page with refused files');
    await pa.goto(`${A}/ressources/nav-1`);
    check(await pa.locator('#mediatheque ul.gallery img').count() === 2, 'a refused upload added something');
  });

  await step('office B shows the photos as « en cours de réception », then the images when they arrive, live', async () => {
    await control('idle');
    await pb.goto(`${B}/ressources/nav-1`);
    await waitText(pb, '#mediatheque', '© Jeanne Martin / CAUE 63');
    await waitText(pb, '#mediatheque', 'Photo en cours de réception');
    await waitText(pb, '#mediatheque', 'Manque : vignette (');
    await waitText(pb, '#mediatheque .documents', 'en cours de réception');
    await shotBoth(pb, '17-b-en-reception');
    await axeCheck(pb, 'placeholders of media not received yet');
    await pb.goto(`${B}/?q=pise`);
    await pb.locator('#resultats .card-cover.waiting').waitFor();
    await pb.goto(`${B}/ressources/nav-1`);
    await control('media-arrive');
    await pb.waitForFunction(() => document.querySelectorAll('#mediatheque ul.gallery img').length === 2
      && !document.querySelector('#mediatheque [data-waiting]'), null, { timeout: WAIT });
    await pb.locator('#mediatheque .documents a', { hasText: 'notice-ecole.pdf' }).waitFor();
  });

  await step('lists and search results show the first photo as a decorative card image', async () => {
    await pa.goto(`${A}/?q=pise`);
    const img = pa.locator('#resultats li.card .card-cover img').first();
    await img.waitFor();
    check(await img.getAttribute('alt') === '', 'the card image is not decorative (alt="")');
    check(await img.getAttribute('loading') === 'lazy', 'the card image is not loaded lazily');
    await pa.goto(`${A}/`);
    await waitText(pa, '#resultats', 'École en pisé de Thiers');
    await pa.waitForFunction(() => { const i = document.querySelector('#resultats .card-cover img'); return i && i.complete && i.naturalWidth > 0; });
    await shotBoth(pa, '18-liste-avec-photo');
    await axeCheck(pa, 'the list with card images');
  });

  await step('a resource created in office A appears live in office B', async () => {
    await pb.goto(`${B}/`);
    await pa.goto(`${A}/ressources/nouvelle`);
    await waitText(pa, 'main', 'sensibiliser un public');
    await shot(pa, '04-choisir-type');
    await pa.locator('a[data-kind=realisation]').click();
    await pa.locator('#champ-title').fill(created);
    await pa.locator('#champ-summary').fill('Une grange transformée en salle associative.');
    await pa.locator('#champ-description').fill(original);
    await pa.locator('#champ-location-commune').fill('Billom');
    await pa.locator('#champ-location-departement').selectOption('63');
    await pa.locator('#champ-year').fill('2022');
    await pa.locator('#champ-intervention').selectOption('rehabilitation');
    await pa.locator('label.option', { hasText: 'Patrimoine bâti' }).click();
    await pa.locator('label.option', { hasText: 'Terre crue' }).click();
    await pa.locator('#champ-designers-0-name').fill('Atelier Terres Vives');
    await pa.locator('#champ-client').fill('Association des Amis de Billom');
    await shot(pa, '05-formulaire-creation');
    await pa.locator('form.resource-form button.primary').click();
    await waitText(pa, '.notice', 'La fiche a été créée.');
    id = new URL(pa.url()).pathname.split('/')[2];
    await waitText(pb, '#resultats', created);
  });

  await step('an invalid form says what is wrong next to the field', async () => {
    await pa.goto(`${A}/ressources/nouvelle?type=outil`);
    await pa.locator('#champ-year').fill('vingt');
    await pa.locator('#champ-location-lat').fill('95');
    await pa.locator('form.resource-form button.primary').click();
    await waitText(pa, '#champ-title-erreur', 'Obligatoire');
    await waitText(pa, '#champ-year-erreur', 'année');
    await waitText(pa, '#champ-location-lat-erreur', 'Latitude');
    await waitText(pa, '.error-summary', '3 champs sont à corriger');
    await shot(pa, '06-formulaire-erreurs');
  });

  await step('two offices type in the same description at once: both texts kept, carets kept', async () => {
    await control('idle');
    await pa.goto(`${A}/ressources/${id}/modifier`);
    await pb.goto(`${B}/ressources/${id}/modifier`);
    await waitValue(pb, '#champ-description', original);
    const ta = pa.locator('#champ-description');
    const tb = pb.locator('#champ-description');
    await ta.click();
    await pa.keyboard.press('Control+End');
    await tb.click();
    await pb.evaluate(() => document.querySelector('#champ-description').setSelectionRange(0, 0));
    const atA = ' Texte écrit à Clermont, façade « est ».';
    const atB = 'Écrit à Aurillac 🙂 : ';
    await Promise.all([ta.pressSequentially(atA, { delay: 25 }), tb.pressSequentially(atB, { delay: 35 })]);
    const expected = atB + original + atA;
    await waitValue(pa, '#champ-description', expected);
    await waitValue(pb, '#champ-description', expected);
    for (const [p, url] of [[pa, A], [pb, B]]) {
      const s = await p.evaluate(async (u) => (await fetch(u, { headers: { Accept: 'application/json' } })).json(), `${url}/ressources/${id}/texte`);
      check(s.resource.description === expected, `server text at ${url}: ${JSON.stringify(s.resource.description)}`);
    }
    await waitText(pa, '.live-status[data-for=description]', 'Enregistré.');
    await waitText(pa, '.live-status[data-for=summary]', 'Enregistré automatiquement pendant la frappe.');
    await shot(pa, '07-edition-simultanee');
  });

  await step('a field saved in B updates the same form open in A, in place', async () => {
    await pb.locator('#champ-client').fill('Commune de Billom');
    await pb.locator('#formulaire button.primary').click();
    await waitText(pb, '.notice', 'Modifications enregistrées.');
    await waitValue(pa, '#champ-client', 'Commune de Billom');
    check((await pa.locator('#champ-description').inputValue()).includes('Clermont'), 'A lost its text');
  });

  await step('offline: editing works the same, the indicator counts what waits, and it flows on resume', async () => {
    await control('idle');
    await control('pause');
    await pa.goto(`${A}/ressources/${id}/modifier`);
    await pa.locator('#sync[data-kind=hors_ligne]').waitFor();
    await pa.locator('#champ-title').fill(created + ' (hors ligne)');
    await pa.locator('#formulaire button.primary').click();
    await waitText(pa, 'h1', '(hors ligne)');
    await waitText(pa, '#sync', '1 modification pas encore sur le relais');
    await shot(pa, '08-hors-ligne');
    await pb.goto(`${B}/ressources/${id}/modifier`);
    await pb.locator('#sync[data-kind=hors_ligne]').waitFor();
    await pb.locator('#champ-description').click();
    await pb.keyboard.press('Control+End');
    await pb.locator('#champ-description').pressSequentially(' Ajout hors ligne.', { delay: 10 });
    await waitText(pb, '.live-status[data-for=description]', 'Enregistré.');
    await pb.goto(`${B}/ressources/${id}`);
    await waitText(pb, 'h1', '(hors ligne)', true);
    await waitText(pa, '#sync', 'Hors ligne');
    await control('resume');
    await waitText(pb, 'h1', '(hors ligne)');
    await waitText(pa, '#fiche', 'Ajout hors ligne.');
    await pa.locator('#sync[data-kind=connecte]').waitFor();
    await waitText(pa, '#sync', 'à jour');
  });

  await step('history says who changed what and when, shows an earlier version, and can go back to it', async () => {
    await pa.goto(`${A}/ressources/${id}/historique`);
    await waitText(pa, 'table.history', 'CAUE du Cantal');
    await waitText(pa, 'table.history', 'CAUE du Puy-de-Dôme');
    await waitText(pa, 'table.history', 'création de la fiche');
    await waitText(pa, 'table.history', 'Description');
    await waitText(pa, 'table.history', "Maître d'ouvrage");
    await shot(pa, '09-historique');
    await pa.locator('table.history a', { hasText: 'Voir' }).last().click();
    await waitText(pa, '.notice', 'ancienne version');
    await waitText(pa, 'h1', created);
    await waitText(pa, 'h1', '(hors ligne)', true);
    await shot(pa, '10-ancienne-version');
    await pa.locator('button', { hasText: 'Revenir à cette version' }).click();
    await waitText(pa, '.notice', 'a repris les valeurs');
    await waitText(pa, 'h1', '(hors ligne)', true);
  });

  await step('deleting asks first, then the resource leaves both offices\u2019 lists', async () => {
    await pa.goto(`${A}/`);
    await waitText(pa, '#resultats', created);
    await pb.goto(`${B}/ressources/${id}/supprimer`);
    await waitText(pb, 'main', 'Supprimer la fiche');
    await shot(pb, '11-suppression');
    await pb.locator('button', { hasText: 'Oui, supprimer cette fiche' }).click();
    await waitText(pb, '.notice', 'a été supprimée');
    await waitText(pa, '#resultats', created, true);
  });

  await step('splices count Unicode characters, never half a surrogate pair', async () => {
    const r = await pa.evaluate(() => {
      const t = window.atelierText;
      return {
        emojiSwap: t.diff('a😀b', 'a😃b'),
        emojiInsert: t.diff('ab', 'a🙂b'),
        len: t.cpLen('é🙂x'),
        caretAfter: t.rebase(10, { start: 2, oldEnd: 4, newEnd: 7 }),
        caretBefore: t.rebase(1, { start: 2, oldEnd: 4, newEnd: 7 }),
        caretInside: t.rebase(3, { start: 2, oldEnd: 4, newEnd: 7 }),
      };
    });
    check(JSON.stringify(r.emojiSwap) === JSON.stringify({ start: 1, oldEnd: 3, newEnd: 3 }), `swap ${JSON.stringify(r.emojiSwap)}`);
    check(JSON.stringify(r.emojiInsert) === JSON.stringify({ start: 1, oldEnd: 1, newEnd: 3 }), `insert ${JSON.stringify(r.emojiInsert)}`);
    check(r.len === 3, `cpLen ${r.len}`);
    check(r.caretAfter === 13 && r.caretBefore === 1 && r.caretInside === 7, `rebase ${JSON.stringify(r)}`);
  });

  await step('the lexicon explains the words', async () => {
    await pa.goto(`${A}/lexique`);
    await waitText(pa, 'main', 'Action de médiation');
    await shot(pa, '12-lexique');
  });

  // ---- Working together: a group, its plan de charge, a discussion, a review --------------

  // At a phone's width nothing may make the page scroll sideways (tables scroll in their frame
  // or turn into cards).
  async function noSidewaysScroll(page, what) {
    await page.setViewportSize({ width: 390, height: 844 });
    const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, win: window.innerWidth }));
    await page.setViewportSize({ width: 1280, height: 900 });
    check(widths.doc <= widths.win, `${what} is ${widths.doc} px wide at 390 px`);
  }

  let groupPath = null;
  await step('a group is created with its line, publics and a theme; its home lists the resources under the theme', async () => {
    await pa.goto(`${A}/groupes`);
    await waitText(pa, 'h1', 'Groupes de travail');
    await pa.locator('#nouveau-groupe-name').fill('Massif central');
    await pa.locator('#nouveau-groupe-slogan').fill('Bâtir avec ce que le territoire donne');
    await pa.locator('#nouveau-groupe-action').fill('Habiter le Massif central');
    await pa.locator('#nouveau-groupe-members').fill('caue-15');
    await pa.locator('label.option', { hasText: 'Élus' }).click();
    await pa.locator('#nouveau-groupe-publics_own').fill('artisans du bâti ancien');
    await pa.locator('#nouveau-groupe-line').fill('Montrer ce qui se construit avec les ressources locales : la terre, la pierre, le bois.\n\nDes exemples concrets, pour les élus d\u2019abord.');
    await axeCheck(pa, 'the groups page');
    await pa.locator('form[action="/groupes"] button[type=submit]').click();
    await waitText(pa, '.notice', 'Le groupe a été créé.');
    groupPath = new URL(pa.url()).pathname;
    await pa.goto(`${A}${groupPath}/reglages`);
    await pa.locator('#theme-theme_label').fill('Construire avec la terre');
    await pa.locator('#theme-theme_explanation').fill('Le pisé, l\u2019adobe et la bauge, du neuf à la restauration.');
    await pa.locator('form.theme-form details.vocabulary summary', { hasText: 'Filière' }).click();
    await pa.locator('form.theme-form label.option', { hasText: 'Terre crue' }).click();
    await shotBoth(pa, '20b-reglages-groupe');
    await axeCheck(pa, 'the group settings');
    await pa.locator('form.theme-form button.primary').click();
    await waitText(pa, '.notice', 'Modifications enregistrées.');
    await pa.goto(`${A}${groupPath}`);
    await waitText(pa, '#groupe', 'Construire avec la terre');
    await waitText(pa, '#groupe', 'École en pisé de Thiers');
    await waitText(pa, '#groupe', 'artisans du bâti ancien');
    await waitText(pa, '#groupe', 'CAUE du Cantal');
    await shotBoth(pa, '20-groupe');
    await axeCheck(pa, 'the group home');
    await noSidewaysScroll(pa, 'the group home');
  });

  let taskPath = null;
  await step('the plan de charge: a task for caue-15, late, its status changed in place', async () => {
    await pa.goto(`${A}${groupPath}/plan`);
    await pa.locator('#nouvelle-tache-title').fill('Photographier l\u2019école de Thiers');
    await pa.locator('#nouvelle-tache-office').selectOption('caue-15');
    await pa.locator('#nouvelle-tache-person').fill('Paul');
    await pa.locator('#nouvelle-tache-due').fill('31/01/2020');
    await pa.locator('#ajouter button.primary').click();
    await waitText(pa, '.notice', 'La tâche a été ajoutée');
    await pa.locator('#nouvelle-tache-title').fill('Écrire la ligne éditoriale');
    await pa.locator('#nouvelle-tache-office').selectOption('caue-63');
    await pa.locator('#nouvelle-tache-due').fill('2030-06-30');
    await pa.locator('#ajouter button.primary').click();
    await waitText(pa, '#plan', 'Écrire la ligne éditoriale');
    await waitText(pa, '#plan', 'janvier 2020');
    await waitText(pa, '#plan', 'en retard');
    const row = pa.locator('#plan tr', { hasText: 'Écrire la ligne éditoriale' });
    await row.locator('select').selectOption('en_cours');
    await row.locator('button', { hasText: 'Changer' }).click();
    await waitText(pa, '.notice', 'Modification enregistrée.');
    check(await pa.locator('#plan tr', { hasText: 'Écrire la ligne éditoriale' }).locator('select').inputValue() === 'en_cours', 'the status did not change');
    // A due date that is not a date: the message next to the field, the text kept.
    await pa.locator('#nouvelle-tache-title').fill('Tâche mal datée');
    await pa.locator('#nouvelle-tache-due').fill('31 février');
    await pa.locator('#ajouter button.primary').click();
    await waitText(pa, '#nouvelle-tache-due-erreur', "n'est pas une date");
    await waitValue(pa, '#nouvelle-tache-due', '31 février');
    await pa.goto(`${A}${groupPath}/plan`);
    await shotBoth(pa, '21-plan-de-charge');
    await axeCheck(pa, 'the plan de charge');
    await noSidewaysScroll(pa, 'the plan de charge');
    taskPath = await pa.locator('#plan a', { hasText: 'Photographier' }).getAttribute('href');
  });

  await step('a comment mentioning @caue-15 reaches its « Pour vous », live in the header count', async () => {
    await control('idle');
    await pb.goto(`${B}/pour-vous`);
    await waitText(pb, '#pour-vous', 'Photographier l\u2019école de Thiers');
    const before = await pb.locator('#compteurs').textContent();
    await pa.goto(`${A}${taskPath}`);
    await pa.locator('#commentaire-author').fill('Marie');
    await pa.locator('#commentaire-text').fill('Paul, tu peux passer à Thiers avant la fin du mois ? @caue-15 nous dira.');
    await pa.locator('form.comment-form button.primary').click();
    await waitText(pa, '.notice', 'Commentaire enregistré.');
    await waitText(pa, '#fil mark.mention', '@caue-15');
    // The name is remembered for the next comment.
    await pa.goto(`${A}${taskPath}`);
    await waitValue(pa, '#commentaire-author', 'Marie');
    await control('idle');
    await waitText(pb, '#pour-vous', 'tu peux passer à Thiers');
    // The header counts are recomputed by a server task (at most every 2 s) and pushed: wait for them.
    await pb.waitForFunction(
      (b) => document.querySelector('#compteurs')?.textContent !== b, before, { timeout: WAIT },
    ).catch(() => check(false, 'the « Pour vous » count did not change'));
    await pb.goto(`${B}${taskPath}`);
    await pb.locator('#fil details.reply summary').first().click();
    await pb.locator('#fil details.reply textarea').first().fill('Oui, j\u2019y vais jeudi.');
    await pb.locator('#fil details.reply button.primary').first().click();
    await waitText(pb, '.notice', 'Commentaire enregistré.');
    await control('idle');
    await waitText(pa, '#fil', 'j\u2019y vais jeudi');
    await pa.locator('#fil details.edit summary').first().click();
    await pa.locator('#fil details.edit textarea').first().fill('Paul, tu peux passer à Thiers avant le 15 ? @caue-15 nous dira.');
    await pa.locator('#fil details.edit button.primary').first().click();
    await waitText(pa, '#fil', 'modifié');
    await shotBoth(pa, '22-discussion');
    await axeCheck(pa, 'a task with its discussion');
    await noSidewaysScroll(pa, 'the discussion');
  });

  await step('a review round trip: asked of caue-15, seen in its « À relire », approved, shown to caue-63', async () => {
    await pa.goto(`${A}/ressources/nav-3`);
    await pa.locator('#relecture details.review-ask summary').click();
    await pa.locator('#relecture-demande-to').fill('caue-15');
    await pa.locator('#relecture-demande-comment').fill('Peux-tu relire les fiches pratiques ?');
    await pa.locator('#relecture details.review-ask button.primary').click();
    await waitText(pa, '#relecture', 'Relecture demandée à');
    await control('idle');
    await pb.goto(`${B}/a-relire`);
    await waitText(pb, '#a-relire', 'Guide des enduits à la chaux');
    await pb.locator('#a-relire a', { hasText: 'Guide des enduits' }).click();
    await pb.locator('#relecture-decision-comment').fill('Très clair, bravo.');
    await shotBoth(pb, '23-relecture');
    await axeCheck(pb, 'the review panel');
    await pb.locator('button', { hasText: 'Approuver' }).click();
    await waitText(pb, '#relecture', 'Approuvée par');
    await control('idle');
    await pa.goto(`${A}/ressources/nav-3`);
    await waitText(pa, '#relecture', 'Approuvée par CAUE du Cantal');
    await pa.goto(`${A}/nouveautes`);
    await waitText(pa, '#nouveautes', 'approuvée');
    await waitText(pa, '#nouveautes', 'CAUE du Cantal');
    await shotBoth(pa, '24-quoi-de-neuf');
    await axeCheck(pa, 'Quoi de neuf');
    await pa.locator('button', { hasText: 'Marquer comme lu' }).click();
    await waitText(pa, '.notice', 'Tout est marqué comme lu.');
  });

  await atlasSteps.run({ step, check, pa, pb, shotBoth, axeCheck, waitText, A, B });
  await publicationSteps({ step, check, pa, pb, A, B, shot, shotBoth, axeCheck, waitText, control, opts });
  await opendataSteps({ step, check, pa, pb, A, B, shot, shotBoth, axeCheck, waitText, noSidewaysScroll });

  await step('no script error on any page', async () => {
    check(pageErrors.length === 0, pageErrors.join('\n'));
  });
} catch (e) {
  // Reported by step(); screenshots of where each page stood help the reader.
  await shot(pa, 'echec-A').catch(() => {});
  await shot(pb, 'echec-B').catch(() => {});
} finally {
  await browser.close();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
