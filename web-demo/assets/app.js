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

  // ---- Live events -----------------------------------------------------------------------
  const handlers = [];
  function onChange(f) { handlers.push(f); }
  let events;
  function connect() {
    events = new EventSource('/events');
    events.addEventListener('sync', function (e) { showSync(JSON.parse(e.data)); });
    events.addEventListener('change', function (e) {
      const c = JSON.parse(e.data);
      handlers.forEach(function (f) { f(c.key); });
    });
    events.addEventListener('resync', function () { handlers.forEach(function (f) { f(null); }); });
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

  if (page === 'list') {
    instantSearch();
  }
  if (page === 'resource' || page === 'history') {
    const block = page === 'resource' ? 'fiche' : 'historique';
    onChange(function (key) { if (key === null || key === doc) refreshBlock(block); });
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
    // A change anywhere in the corpus: the same address again (page number included).
    onChange(function () {
      clearTimeout(liveTimer);
      liveTimer = setTimeout(function () {
        if (typingTimer === null) load(location.search.replace(/^\?/, ''));
      }, LIVE_DELAY_MS);
    });
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
