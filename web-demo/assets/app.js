// Atelier's pages: live updates, the sync indicator, and live text editing by splices.
// Plain script, no dependencies, no build step. Pages work without it (forms post as usual).
'use strict';

(function () {
  const body = document.body;
  const page = body.dataset.page;
  const doc = body.dataset.doc || null;

  // ---- Dates in local time -------------------------------------------------------------
  function localTimes(root) {
    const fmt = new Intl.DateTimeFormat('fr-FR', { dateStyle: 'short', timeStyle: 'short' });
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      const d = new Date(t.getAttribute('datetime'));
      if (!isNaN(d)) t.textContent = fmt.format(d).replace(' ', ' à ');
    });
  }
  localTimes(document);

  // ---- Sync indicator ------------------------------------------------------------------
  function showSync(view) {
    const el = document.getElementById('sync');
    if (!el) return;
    el.dataset.kind = view.kind;
    el.title = view.detail;
    el.querySelector('.headline').textContent = view.headline;
    el.querySelector('.detail').textContent = view.detail;
    el.querySelector('.dot').textContent = view.kind === 'connecte' ? '●' : view.kind === 'hors_ligne' ? '○' : '◌';
    el.querySelector('#sync-now').hidden = view.kind !== 'hors_ligne';
  }
  document.addEventListener('click', function (e) {
    if (e.target && e.target.id === 'sync-now') {
      fetch('/api/sync', { method: 'POST', headers: { Accept: 'application/json' } });
    }
  });

  // ---- Header counts (« Pour vous », « Quoi de neuf ») ----------------------------------------
  function showCounts(c) {
    document.querySelectorAll('[data-count]').forEach(function (el) {
      const n = c[el.dataset.count];
      if (typeof n !== 'number') return;
      el.hidden = n === 0;
      el.querySelector('.nav-count').textContent = String(n);
      el.querySelector('.visually-hidden').textContent = ' : ' + n + ' ' + (n === 1 ? el.dataset.one : el.dataset.many);
    });
  }

  // ---- Live events -----------------------------------------------------------------------
  const handlers = [];
  function onChange(f) { handlers.push(f); }
  // A blob arrived: `f(hash)`.
  const mediaHandlers = [];
  function onMedia(f) { mediaHandlers.push(f); }
  // Whether something under `root` waits for this blob (« en cours de réception »).
  function waitsFor(root, hash) {
    return !!(root && /^[0-9a-f]{64}$/.test(hash) && root.querySelector('[data-waiting~="' + hash + '"]'));
  }
  let events;
  function connect() {
    events = new EventSource('/events');
    events.addEventListener('sync', function (e) { showSync(JSON.parse(e.data)); });
    events.addEventListener('counts', function (e) { showCounts(JSON.parse(e.data)); });
    events.addEventListener('change', function (e) {
      const c = JSON.parse(e.data);
      handlers.forEach(function (f) { f(c.key); });
    });
    events.addEventListener('resync', function () { handlers.forEach(function (f) { f(null); }); });
    events.addEventListener('media', function (e) {
      const m = JSON.parse(e.data);
      mediaHandlers.forEach(function (f) { f(m.hash); });
    });
    events.onopen = function () { body.classList.remove('server-lost'); };
    events.onerror = function () { body.classList.add('server-lost'); };
  }
  connect();
  // Browsers allow about six connections per server: a hidden tab gives its stream back and
  // catches up when shown again.
  document.addEventListener('visibilitychange', function () {
    if (document.hidden) {
      events.close();
    } else if (events.readyState === EventSource.CLOSED) {
      connect();
      handlers.forEach(function (f) { f(null); });
    }
  });

  // Replaces the element `id` with the one of a fresh copy of this page.
  let refreshing = null;
  function refreshBlock(id) {
    if (refreshing) { clearTimeout(refreshing); }
    refreshing = setTimeout(function () {
      refreshing = null;
      fetch(location.href, { headers: { Accept: 'text/html' } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          const fresh = new DOMParser().parseFromString(html, 'text/html').getElementById(id);
          const old = document.getElementById(id);
          if (fresh && old && fresh.innerHTML !== old.innerHTML) {
            old.replaceWith(fresh);
            localTimes(fresh);
          }
        })
        .catch(function () {});
    }, 150);
  }

  // ---- Live blocks of the working-together pages ------------------------------------------
  //
  // An element with `data-live-block` is redrawn from a fresh copy of the page when one of the
  // documents in its `data-watch` (bare ids, or `*` for any) changes, with the header's counts.
  // A block where someone is typing (a focused field, a changed value, an open reply or edit
  // form) is left alone until the next change, so nothing typed is lost.
  const liveBlocks = Array.from(document.querySelectorAll('[data-live-block][id]'));
  function busy(el) {
    const a = document.activeElement;
    if (a && el.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName)) return true;
    if (el.querySelector('details[open] form')) return true;
    return Array.from(el.querySelectorAll('textarea, input[type=text]')).some(function (n) { return n.value !== n.defaultValue; });
  }
  let pendingBlocks = new Set(), blocksTimer = null;
  function refreshBlocks(ids) {
    ids.forEach(function (id) { pendingBlocks.add(id); });
    clearTimeout(blocksTimer);
    blocksTimer = setTimeout(function () {
      const wanted = Array.from(pendingBlocks);
      pendingBlocks = new Set();
      fetch(location.href, { headers: { Accept: 'text/html' } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          const fresh = new DOMParser().parseFromString(html, 'text/html');
          wanted.concat(['compteurs']).forEach(function (id) {
            const next = fresh.getElementById(id);
            const old = document.getElementById(id);
            if (!next || !old || next.innerHTML === old.innerHTML) return;
            if (busy(old)) { pendingBlocks.add(id); return; }
            old.replaceWith(document.adoptNode(next));
            localTimes(next);
          });
        })
        .catch(function () {});
    }, 150);
  }
  if (liveBlocks.length) {
    onChange(function (key) {
      const ids = liveBlocks.filter(function (el) {
        const watch = (el.dataset.watch || '').split(/\s+/).filter(Boolean);
        return key === null || watch.length === 0 || watch.indexOf('*') >= 0 || watch.indexOf(key) >= 0;
      }).map(function (el) { return el.id; });
      if (ids.length) refreshBlocks(ids);
    });
  }

  if (page === 'list') {
    instantSearch();
  }
  if (page === 'resource' || page === 'history') {
    const block = page === 'resource' ? 'fiche' : 'historique';
    onChange(function (key) { if (key === null || key === doc) refreshBlock(block); });
  }
  if (page === 'resource') {
    onMedia(function (hash) { if (waitsFor(document.getElementById('fiche'), hash)) refreshBlock('fiche'); });
    viewer();
  }
  if (page === 'media') {
    uploadForm();
  }
  if (page === 'edit' && doc) {
    liveEditing(doc);
  }

  // ---- Search as you type (list page) ----------------------------------------------------
  //
  // The form's state becomes the address (history.replaceState), and the facets and results
  // of that address come from /fragments/resultats, rendered by the same server code as the
  // page. The search box itself is never replaced, so focus and caret stay where they are.
  // Only the answer to the latest request is shown: the previous request is aborted, and a
  // sequence number drops any answer that still arrives late.
  function instantSearch() {
    const TYPING_DELAY_MS = 200;
    const LIVE_DELAY_MS = 150;
    const form = document.getElementById('filtres');
    const input = document.getElementById('q');
    if (!form || !input || !window.AbortController) return;
    let typingTimer = null, liveTimer = null, seq = 0, controller = null;

    function formQuery() {
      const p = new URLSearchParams();
      new FormData(form).forEach(function (v, k) { if (typeof v === 'string' && v.trim() !== '') p.append(k, v); });
      return p.toString();
    }

    // After `delay` ms without another call: the form's state goes to the address, then its results.
    function fromForm(delay) {
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () {
        typingTimer = null;
        const query = formQuery();
        const url = query ? '/?' + query : '/';
        if (location.pathname + location.search !== url) history.replaceState(history.state, '', url);
        load(query);
      }, delay);
    }

    function load(query) {
      const mine = ++seq;
      if (controller) controller.abort();
      controller = new AbortController();
      form.setAttribute('aria-busy', 'true');
      fetch('/fragments/resultats' + (query ? '?' + query : ''), { headers: { Accept: 'text/html' }, signal: controller.signal })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (mine !== seq) return;
          form.removeAttribute('aria-busy');
          if (html !== null) show(html);
        })
        .catch(function () { if (mine === seq) form.removeAttribute('aria-busy'); });
    }

    function show(html) {
      const fresh = new DOMParser().parseFromString(html, 'text/html');
      // A ticked box keeps the keyboard focus once its group is redrawn.
      const focused = document.activeElement;
      const focusId = focused && focused.id && focused.closest('#facettes') ? focused.id : null;
      ['facettes', 'resultats'].forEach(function (id) {
        const next = fresh.getElementById(id);
        const old = document.getElementById(id);
        if (next && old && next.outerHTML !== old.outerHTML) {
          old.replaceWith(document.adoptNode(next));
          localTimes(next);
        }
      });
      if (focusId) {
        const again = document.getElementById(focusId);
        if (again && again !== document.activeElement) again.focus({ preventScroll: true });
      }
      const results = document.getElementById('resultats');
      const announce = document.getElementById('resultats-annonce');
      const said = results ? results.dataset.annonce || '' : '';
      if (announce && announce.textContent !== said) announce.textContent = said;
    }

    input.addEventListener('input', function () { fromForm(TYPING_DELAY_MS); });
    form.addEventListener('change', function (e) {
      if (e.target.type === 'checkbox') fromForm(0);
    });
    // Enter or « Filtrer »: the same, at once, without leaving the page.
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      fromForm(0);
    });
    // A change anywhere in the corpus, or a card's photo arriving: the same address again
    // (page number included).
    function again() {
      clearTimeout(liveTimer);
      liveTimer = setTimeout(function () {
        if (typingTimer === null) load(location.search.replace(/^\?/, ''));
      }, LIVE_DELAY_MS);
    }
    onChange(again);
    onMedia(function (hash) { if (waitsFor(document.getElementById('resultats'), hash)) again(); });
  }

  // ---- Live text editing -----------------------------------------------------------------
  //
  // Each live textarea keeps `shadow`: the text the server has (at `base`) plus the splices
  // this page sent or queued. On input, the difference between shadow and the textarea becomes a
  // splice in Unicode characters. Splices go out one batch at a time with the `base` heads they
  // were computed against; the server applies them to that version and merges, so concurrent
  // typing elsewhere is kept. A change from elsewhere is applied to the textarea only when
  // nothing of ours is pending, with the caret moved along.
  function liveEditing(key) {
    const form = document.getElementById('formulaire');
    const areas = Array.from(document.querySelectorAll('textarea[data-live]'));
    if (!form || areas.length === 0) return;
    form.querySelector('input[name=texte_en_direct]').value = '1';
    const url = '/ressources/' + key + '/texte';
    const st = { base: null, queue: [], inflight: false, gen: 0, dirty: false, retry: 0 };
    const fields = {};
    areas.forEach(function (ta) {
      const name = ta.dataset.live;
      fields[name] = { ta: ta, shadow: ta.value, status: document.querySelector('.live-status[data-for="' + name + '"]') };
      ta.addEventListener('input', function () { typed(name); });
    });

    // Shows `text` under the fields named (all of them when `names` is not given).
    function setStatus(text, kind, names) {
      (names || Object.keys(fields)).forEach(function (n) {
        const s = fields[n] && fields[n].status;
        if (s) { s.textContent = text; s.dataset.kind = kind || ''; }
      });
    }
    function namesOf(edits) {
      return edits.map(function (e) { return e.splice.field; }).filter(function (n, i, all) { return all.indexOf(n) === i; });
    }

    function typed(name) {
      const f = fields[name];
      const now = f.ta.value;
      if (now === f.shadow) return;
      const d = diff(f.shadow, now);
      st.queue.push({ splice: {
        field: name,
        pos: cpLen(f.shadow.slice(0, d.start)),
        delete: cpLen(f.shadow.slice(d.start, d.oldEnd)),
        insert: now.slice(d.start, d.newEnd),
      } });
      f.shadow = now;
      setStatus('Enregistrement…', 'saving', [name]);
      flush();
    }

    function flush() {
      if (st.inflight || st.queue.length === 0 || st.base === null) return;
      const edits = st.queue;
      st.queue = [];
      st.inflight = true;
      post(edits).then(function (r) {
        st.inflight = false;
        st.retry = 0;
        st.base = r.heads;
        st.gen++;
        const pending = namesOf(st.queue);
        setStatus('Enregistré.', 'saved', namesOf(edits).filter(function (n) { return pending.indexOf(n) < 0; }));
        if (st.queue.length) { flush(); return; }
        if (st.dirty) refresh();
      }).catch(function (err) {
        st.inflight = false;
        if (err && err.status) {
          // Refused (invalid text, unknown version): say why, and take the server's text back.
          setStatus(err.message || 'Modification refusée.', 'error', namesOf(edits));
          st.queue = [];
          refresh(true);
        } else {
          // The server is unreachable: keep the batch and try again.
          st.queue = edits.concat(st.queue);
          setStatus('Pas de réponse du serveur : nouvel essai…', 'error', namesOf(edits));
          st.retry = Math.min(st.retry + 1, 5);
          setTimeout(flush, 500 * st.retry);
        }
      });
    }

    function post(edits) {
      return fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ base: st.base, edits: edits }),
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (!r.ok) throw { status: r.status, message: j.error };
          return j;
        });
      });
    }

    // Takes the server's state when nothing of ours is pending (otherwise later).
    function refresh(force) {
      if (!force && (st.inflight || st.queue.length)) { st.dirty = true; return; }
      const gen = st.gen;
      fetch(url, { headers: { Accept: 'application/json' } })
        .then(function (r) { if (!r.ok) throw r; return r.json(); })
        .then(function (s) {
          if (st.inflight || st.queue.length || gen !== st.gen) { st.dirty = true; return; }
          st.dirty = false;
          st.base = s.heads;
          Object.keys(fields).forEach(function (name) { adopt(fields[name], s.resource[name] || ''); });
          flush();
        })
        .catch(function () { st.dirty = true; });
    }

    // Puts the server's text in the textarea, the caret and selection moved along.
    function adopt(f, text) {
      if (text === f.shadow) return;
      const ta = f.ta;
      const d = diff(f.shadow, text);
      const focused = document.activeElement === ta;
      const a = rebase(ta.selectionStart, d), b = rebase(ta.selectionEnd, d);
      ta.value = text;
      f.shadow = ta.value;
      if (focused) ta.setSelectionRange(a, b);
    }

    let mergeTimer = null;
    onChange(function (k) {
      if (k !== null && k !== key) return;
      refresh();
      // Our own keystrokes also come back as changes: merge the other fields once typing pauses.
      clearTimeout(mergeTimer);
      mergeTimer = setTimeout(mergeOtherFields, 400);
    });
    refresh(true);

    // Other fields: those the person has not touched take the new values in place.
    function mergeOtherFields() {
      fetch(location.pathname, { headers: { Accept: 'text/html' } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          const fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('formulaire');
          if (!fresh) return;
          fresh.querySelectorAll('input, select').forEach(function (n) {
            if (!n.id && n.type !== 'hidden') return;
            const old = n.id ? document.getElementById(n.id) : form.querySelector('input[type=hidden][name="' + n.name + '"]');
            if (!old || old === document.activeElement || old.name === 'texte_en_direct') return;
            if (old.type === 'checkbox') {
              if (old.checked === old.defaultChecked) { old.checked = n.defaultChecked; old.defaultChecked = n.defaultChecked; }
            } else if (old.tagName === 'SELECT') {
              const untouched = Array.from(old.options).every(function (o) { return o.selected === o.defaultSelected; });
              if (untouched) {
                Array.from(old.options).forEach(function (o) {
                  const m = Array.from(n.options).find(function (x) { return x.value === o.value; });
                  o.defaultSelected = o.selected = !!(m && m.defaultSelected);
                });
              }
            } else if (old.value === old.defaultValue) {
              old.value = n.defaultValue;
              old.defaultValue = n.defaultValue;
            }
          });
        })
        .catch(function () {});
    }
  }

  // ---- Full-size view of the gallery (resource page) -------------------------------------
  //
  // A thumbnail is a link to the display-size image; with the script it opens a modal dialog
  // instead (focus stays inside, Échap closes it, ← and → go through the gallery) and focus
  // goes back to the thumbnail when it closes.
  function viewer() {
    const dialog = document.getElementById('visionneuse');
    if (!dialog || typeof dialog.showModal !== 'function') return;
    const img = document.getElementById('visionneuse-image');
    const legend = document.getElementById('visionneuse-legende');
    const position = document.getElementById('visionneuse-position');
    let links = [], at = 0, opener = null;

    function show(i) {
      at = (i + links.length) % links.length;
      const a = links[at];
      const thumb = a.querySelector('img');
      const fig = a.closest('figure');
      img.src = a.getAttribute('href');
      img.alt = thumb ? thumb.alt : '';
      legend.textContent = '';
      const caption = fig && fig.querySelector('.caption');
      const credit = fig && fig.querySelector('.credit');
      if (caption) legend.appendChild(span('caption', caption.textContent));
      if (credit) legend.appendChild(span('credit', credit.textContent));
      if (a.dataset.original) {
        const link = document.createElement('a');
        link.href = a.dataset.original;
        link.textContent = 'Télécharger l\u2019original (' + a.dataset.originalSize + ')';
        legend.appendChild(link);
      } else {
        legend.appendChild(span('original', 'Original pas encore sur cet ordinateur (' + a.dataset.originalSize + ')'));
      }
      position.textContent = 'Image ' + (at + 1) + ' sur ' + links.length;
      const several = links.length > 1;
      document.getElementById('visionneuse-precedente').hidden = !several;
      document.getElementById('visionneuse-suivante').hidden = !several;
    }
    function span(cls, text) {
      const s = document.createElement('span');
      s.className = cls;
      s.textContent = text;
      return s;
    }

    document.addEventListener('click', function (e) {
      const a = e.target.closest && e.target.closest('a.media-open');
      if (!a || e.ctrlKey || e.metaKey || e.shiftKey) return;
      e.preventDefault();
      links = Array.from(document.querySelectorAll('#fiche a.media-open'));
      opener = a;
      show(links.indexOf(a));
      dialog.showModal();
      document.getElementById('visionneuse-fermer').focus();
    });
    document.getElementById('visionneuse-fermer').addEventListener('click', function () { dialog.close(); });
    document.getElementById('visionneuse-precedente').addEventListener('click', function () { show(at - 1); });
    document.getElementById('visionneuse-suivante').addEventListener('click', function () { show(at + 1); });
    dialog.addEventListener('keydown', function (e) {
      if (e.key === 'ArrowLeft' && links.length > 1) { e.preventDefault(); show(at - 1); }
      if (e.key === 'ArrowRight' && links.length > 1) { e.preventDefault(); show(at + 1); }
    });
    // A click on the backdrop (outside the picture and its bar) closes too.
    dialog.addEventListener('click', function (e) { if (e.target === dialog) dialog.close(); });
    dialog.addEventListener('close', function () {
      img.src = 'data:,';
      // The thumbnail may have been redrawn meanwhile (live update): find it again.
      const again = opener && (document.body.contains(opener) ? opener
        : document.querySelector('#fiche a.media-open[href="' + opener.getAttribute('href') + '"]'));
      if (again) again.focus();
    });
  }

  // ---- Adding photos and documents (media page) ------------------------------------------
  //
  // Files chosen or dropped are listed, each with its own credit, caption and description
  // (explained by the same help lines as the shared fields the page has without script). The
  // form goes by XMLHttpRequest, whose upload progress is shown; errors come back as JSON and
  // are put next to the file and field they name, everything typed kept.
  function uploadForm() {
    const form = document.getElementById('envoi-medias');
    const input = document.getElementById('fichiers');
    const list = document.getElementById('fichiers-choisis');
    const shared = document.getElementById('textes-communs');
    const zone = document.getElementById('depot');
    if (!form || !input || !list || !shared || !window.FormData || !window.XMLHttpRequest) return;
    const maxBytes = Number(form.dataset.maxBytes) || Infinity;
    const maxFiles = Number(form.dataset.maxFiles) || Infinity;
    const progress = document.getElementById('progression');
    const bar = document.getElementById('progression-barre');
    const barText = document.getElementById('progression-texte');
    const announce = document.getElementById('envoi-annonce');
    const button = form.querySelector('button[type=submit]');
    const help = function (f) { const p = document.getElementById('commun-' + f + '-aide'); return p ? p.textContent : ''; };
    const sharedValue = function (f) { const i = document.getElementById('commun-' + f); return i ? (i.type === 'checkbox' ? i.checked : i.value) : ''; };
    const LABELS = { credit: 'Crédit', caption: 'Légende', alt: 'Description de l\u2019image' };
    let chosen = [], next = 0;

    shared.hidden = true;
    zone.querySelector('.drop-hint').hidden = false;
    zone.classList.add('enhanced');
    const pick = document.createElement('label');
    pick.htmlFor = input.id;
    pick.className = 'button pick';
    pick.textContent = 'Choisir des fichiers…';
    input.after(pick);

    function size(n) {
      const units = [[1e9, 'Go'], [1e6, 'Mo'], [1e3, 'ko']];
      for (const [u, name] of units) if (n >= u) return (n / u).toFixed(1).replace('.', ',') + '\u00a0' + name;
      return n + '\u00a0o';
    }
    function isPdf(file) { return file.type === 'application/pdf' || /\.pdf$/i.test(file.name); }

    function add(files) {
      Array.from(files).forEach(function (file) {
        const last = chosen.length ? chosen[chosen.length - 1] : null;
        chosen.push({ file: file, n: next++, credit: last ? last.el.querySelector('[data-input=credit]').value : sharedValue('credit') });
        render(chosen[chosen.length - 1]);
      });
      list.hidden = chosen.length === 0;
      clearErrors();
      announce.textContent = chosen.length === 1 ? '1 fichier choisi' : chosen.length + ' fichiers choisis';
    }

    function field(entry, name) {
      const id = 'f' + entry.n + '-' + name;
      const wrap = document.createElement('div');
      wrap.className = 'field';
      wrap.dataset.field = name;
      const label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = LABELS[name];
      const p = document.createElement('p');
      p.className = 'help';
      p.id = id + '-aide';
      p.textContent = help(name);
      const inp = document.createElement('input');
      inp.type = 'text';
      inp.id = id;
      inp.maxLength = 1000;
      inp.dataset.input = name;
      inp.setAttribute('aria-describedby', p.id);
      inp.value = name === 'credit' ? entry.credit : sharedValue(name);
      wrap.append(label, p, inp);
      return wrap;
    }
    function box(entry, name, text) {
      const id = 'f' + entry.n + '-' + name;
      const wrap = document.createElement('div');
      wrap.className = 'field check';
      const inp = document.createElement('input');
      inp.type = 'checkbox';
      inp.id = id;
      inp.dataset.input = name;
      inp.checked = !!sharedValue(name);
      const label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = text;
      wrap.append(inp, label);
      return wrap;
    }

    function render(entry) {
      const li = document.createElement('li');
      li.className = 'file-entry';
      entry.el = li;
      const fs = document.createElement('fieldset');
      const legend = document.createElement('legend');
      legend.textContent = entry.file.name + ' (' + size(entry.file.size) + ')';
      fs.appendChild(legend);
      const errors = document.createElement('div');
      errors.className = 'file-errors';
      errors.dataset.input = 'fichier';
      fs.appendChild(errors);
      if (!isPdf(entry.file) && /^image\/(jpeg|png|webp)$/.test(entry.file.type)) {
        const img = document.createElement('img');
        img.className = 'preview';
        img.alt = '';
        img.src = URL.createObjectURL(entry.file);
        img.onload = function () { URL.revokeObjectURL(img.src); };
        fs.appendChild(img);
      }
      fs.appendChild(field(entry, 'credit'));
      fs.appendChild(field(entry, 'caption'));
      if (!isPdf(entry.file)) {
        fs.appendChild(field(entry, 'alt'));
        fs.appendChild(box(entry, 'plan', 'C\u2019est un plan ou un dessin (pas une photo)'));
        fs.appendChild(box(entry, 'gps', 'Utiliser la position GPS de la photo pour situer la fiche'));
      }
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'link';
      remove.textContent = 'Ne pas ajouter ce fichier';
      remove.setAttribute('aria-label', 'Ne pas ajouter ' + entry.file.name);
      remove.addEventListener('click', function () {
        chosen = chosen.filter(function (c) { return c !== entry; });
        li.remove();
        list.hidden = chosen.length === 0;
        announce.textContent = entry.file.name + ' retiré de l\u2019envoi';
        input.focus();
      });
      fs.appendChild(remove);
      li.appendChild(fs);
      list.appendChild(li);
    }

    input.addEventListener('change', function () {
      add(input.files);
      // The list holds the files now: the input can choose more.
      input.value = '';
    });
    ['dragenter', 'dragover'].forEach(function (t) {
      zone.addEventListener(t, function (e) { e.preventDefault(); zone.classList.add('over'); });
    });
    ['dragleave', 'drop'].forEach(function (t) {
      zone.addEventListener(t, function () { zone.classList.remove('over'); });
    });
    zone.addEventListener('drop', function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) add(e.dataTransfer.files);
    });

    function clearErrors() {
      form.querySelectorAll('.js-error').forEach(function (n) { n.remove(); });
      form.querySelectorAll('[aria-invalid]').forEach(function (n) {
        n.removeAttribute('aria-invalid');
        n.setAttribute('aria-describedby', (n.getAttribute('aria-describedby') || '').split(' ').filter(function (d) { return !/-erreur$/.test(d); }).join(' '));
      });
      const old = document.getElementById('erreurs');
      if (old) old.remove();
    }

    // `fields`: [{field: "credit.2" | "fichier.0" | "fichier", message}].
    function showErrors(message, fields) {
      clearErrors();
      const summary = document.createElement('div');
      summary.className = 'error-summary js-error';
      summary.id = 'erreurs';
      summary.setAttribute('role', 'alert');
      summary.tabIndex = -1;
      const h = document.createElement('h2');
      h.textContent = message;
      summary.appendChild(h);
      const ul = document.createElement('ul');
      (fields || []).forEach(function (f, k) {
        const parts = f.field.split('.');
        const entry = parts.length > 1 ? chosen[Number(parts[1])] : null;
        const text = f.message.charAt(0).toUpperCase() + f.message.slice(1);
        const li = document.createElement('li');
        li.textContent = text;
        ul.appendChild(li);
        const p = document.createElement('p');
        p.className = 'error js-error';
        p.id = 'erreur-' + k + '-erreur';
        p.textContent = text;
        const target = entry ? entry.el.querySelector('[data-input="' + parts[0] + '"]') : input;
        if (!target) return;
        if (target.tagName === 'INPUT' && target !== input) {
          target.setAttribute('aria-invalid', 'true');
          target.setAttribute('aria-describedby', (target.getAttribute('aria-describedby') || '') + ' ' + p.id);
          target.before(p);
        } else if (target === input) {
          input.setAttribute('aria-invalid', 'true');
          input.setAttribute('aria-describedby', (input.getAttribute('aria-describedby') || '') + ' ' + p.id);
          (zone.querySelector('.pick') || input).after(p);
        } else {
          target.appendChild(p);
        }
      });
      if (ul.children.length) summary.appendChild(ul);
      form.prepend(summary);
      summary.focus();
    }

    form.addEventListener('submit', function (e) {
      e.preventDefault();
      if (chosen.length === 0) { showErrors('Rien n\u2019a été ajouté : un point est à corriger.', [{ field: 'fichier', message: 'choisissez au moins un fichier' }]); return; }
      if (chosen.length > maxFiles) { showErrors('Trop de fichiers à la fois.', [{ field: 'fichier', message: maxFiles + ' fichiers au plus par envoi ; envoyez les autres ensuite' }]); return; }
      const total = chosen.reduce(function (n, c) { return n + c.file.size; }, 0);
      if (total > maxBytes) { showErrors('Envoi trop volumineux.', [{ field: 'fichier', message: size(total) + ' choisis ; ' + size(maxBytes) + ' au plus par envoi : envoyez les fichiers en plusieurs fois' }]); return; }
      const data = new FormData();
      chosen.forEach(function (c, i) {
        data.append('fichier', c.file, c.file.name);
        c.el.querySelectorAll('[data-input]').forEach(function (n) {
          if (n.tagName !== 'INPUT') return;
          data.append(n.dataset.input + '.' + i, n.type === 'checkbox' ? (n.checked ? '1' : '0') : n.value);
        });
      });
      const xhr = new XMLHttpRequest();
      xhr.open('POST', form.action);
      xhr.setRequestHeader('Accept', 'application/json');
      progress.hidden = false;
      bar.value = 0;
      button.disabled = true;
      barText.textContent = '0 %';
      announce.textContent = 'Envoi commencé';
      xhr.upload.onprogress = function (ev) {
        if (!ev.lengthComputable) return;
        const pct = Math.round(100 * ev.loaded / ev.total);
        bar.value = pct;
        barText.textContent = size(ev.loaded) + ' sur ' + size(ev.total) + ' (' + pct + ' %)';
      };
      xhr.upload.onload = function () {
        bar.value = 100;
        barText.textContent = 'Envoyé ; préparation des vignettes…';
        announce.textContent = 'Fichiers envoyés, préparation des vignettes';
      };
      function done() { button.disabled = false; progress.hidden = true; }
      xhr.onload = function () {
        let j = {};
        try { j = JSON.parse(xhr.responseText); } catch (err) { j = {}; }
        if (xhr.status >= 200 && xhr.status < 300 && j.redirect) {
          barText.textContent = 'Ajouté.';
          location.href = j.redirect;
          return;
        }
        done();
        showErrors(j.error || 'L\u2019envoi a échoué ; réessayez.', j.fields || []);
      };
      xhr.onerror = function () {
        done();
        showErrors('Pas de réponse du serveur : l\u2019application est-elle arrêtée ? Rien n\u2019a été ajouté ; réessayez.', []);
      };
      xhr.send(data);
    });
  }

  // ---- Text helpers (exported for tests as window.atelierText) ---------------------------

  // Common prefix and suffix of two strings in UTF-16 units, never splitting a surrogate pair:
  // a[start, oldEnd) became b[start, newEnd).
  function diff(a, b) {
    let s = 0;
    const n = Math.min(a.length, b.length);
    while (s < n && a.charCodeAt(s) === b.charCodeAt(s)) s++;
    // Stopped inside a pair (same high half, different low half): start before the pair.
    if (s > 0 && isHigh(a.charCodeAt(s - 1))) s--;
    let ea = a.length, eb = b.length;
    while (ea > s && eb > s && a.charCodeAt(ea - 1) === b.charCodeAt(eb - 1)) { ea--; eb--; }
    // The common suffix starts with the low half of a changed pair: leave that half in the change.
    if (ea < a.length && isLow(a.charCodeAt(ea))) { ea++; eb++; }
    return { start: s, oldEnd: ea, newEnd: eb };
  }
  function isHigh(c) { return c >= 0xd800 && c <= 0xdbff; }
  function isLow(c) { return c >= 0xdc00 && c <= 0xdfff; }

  // Length in Unicode characters (code points), as the server counts.
  function cpLen(s) {
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      if (!(isHigh(s.charCodeAt(i)) && i + 1 < s.length && isLow(s.charCodeAt(i + 1)))) n++;
      else { n++; i++; }
    }
    return n;
  }

  // Where a caret at `p` goes when a[start, oldEnd) is replaced: before the change it stays,
  // after it shifts, inside it goes to the end of the new text.
  function rebase(p, d) {
    if (p <= d.start) return p;
    if (p >= d.oldEnd) return p + (d.newEnd - d.oldEnd);
    return d.newEnd;
  }

  window.atelierText = { diff: diff, cpLen: cpLen, rebase: rebase };
})();
