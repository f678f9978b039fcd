// Review decisions (issue 22): keep / exclude / relabel flagged images, offline, in this
// one file. Unsaved choices live in this browser's localStorage (they survive a reload);
// "Download decisions" writes the CSV that `dataqa review import FILE` merges into the
// decisions file. Nothing here touches the network: the download is a blob of this page.
(function () {
  var island = document.getElementById('review-data');
  if (!island) { return; }
  var DATA = JSON.parse(island.getAttribute('data-review'));
  var KEY = 'dataqa-review:' + location.pathname, BYKEY = 'dataqa-review-by';
  var rows = {}, notes = {}, local = {};
  DATA.rows.forEach(function (r) { rows[r.s] = r; });
  try { local = JSON.parse(localStorage.getItem(KEY) || '{}') || {}; } catch (e) { local = {}; }
  // a choice the decisions file now holds (imported, then `dvc repro`) is saved already
  Object.keys(local).forEach(function (sha) {
    var c = local[sha], d = rows[sha] && rows[sha].d;
    if (!rows[sha] || (d && d.decision === c.decision && (d.label || '') === (c.label || '')
        && (d.note || '') === (c.note || ''))) { delete local[sha]; }
  });
  var byInput = document.getElementById('rv-by');
  try { byInput.value = localStorage.getItem(BYKEY) || ''; } catch (e) { /* private mode */ }

  function say(text) { document.getElementById('rv-status').textContent = text; }
  function save() {
    try { localStorage.setItem(KEY, JSON.stringify(local)); }
    catch (e) { say('this browser refused to store the choices (' + e + '): download them now'); }
  }
  function words(d) { return d.decision === 'relabel' ? "relabel to '" + d.label + "'" : d.decision; }
  function pendingOf(r) { return local[r.s] ? [] : r.pend; }
  function stateOf(r) {
    var c = local[r.s], d = r.d;
    if (c) { return 'unsaved: ' + words(c) + (c.note ? ' \u2014 ' + c.note : ''); }
    if (r.pend.length) {
      return 'pending: ' + r.pend.join(', ') + (d ? " (a new flag since '" + d.decision + "')" : '');
    }
    if (d) { return 'decided: ' + words(d) + (d.by ? ' by ' + d.by : '') + (d.note ? ' \u2014 ' + d.note : ''); }
    if (r.x.length) { return 'suspected by a weak model: ' + r.x.join(', ') + ' (not a flag)'; }
    return '';
  }
  function now() { return new Date().toISOString().replace(/\.\d+Z$/, 'Z'); }
  function decide(sha, decision, label) {
    var r = rows[sha];
    if (!r) { return; }
    var prev = local[sha] || r.d || {};
    local[sha] = {decision: decision, label: label || '', path: r.p, by: byInput.value.trim(),
                  note: notes[sha] !== undefined ? notes[sha] : (prev.note || ''), at: now(),
                  checks: r.f.concat(r.x)};
  }
  function isDecided(r, check) {
    return !!local[r.s] || (!!r.d && pendingOf(r).indexOf(check) < 0);
  }
  function show(sha) {
    var r = rows[sha], c = local[sha], cur = c || r.d;
    document.querySelectorAll('.rv[data-sha="' + sha + '"]').forEach(function (el) {
      el.classList.toggle('unsaved', !!c);
      el.classList.toggle('pending', pendingOf(r).length > 0);
      el.classList.toggle('decided', !!cur && pendingOf(r).length === 0);
      el.querySelector('.rv-state').textContent = stateOf(r);
      el.querySelectorAll('button[data-act]').forEach(function (b) {
        b.setAttribute('aria-pressed', String(!!c && c.decision === b.getAttribute('data-act')));
      });
      el.querySelector('select[data-act]').value = c && c.decision === 'relabel' ? c.label : '';
      var note = el.querySelector('.rv-note');
      if (document.activeElement !== note) {
        note.value = notes[sha] !== undefined ? notes[sha] : (cur && cur.note) || '';
      }
      // a gallery keeps the images still pending review apart from the decided ones
      var item = el.closest('.item'), sec = item && item.closest('section');
      var part = item && item.parentNode.getAttribute('data-part');
      if (!part || !sec || !sec.querySelector('[data-part="decided"]')) { return; }
      var check = sec.id.replace(/^gallery-/, ''), want = isDecided(r, check) ? 'decided' : 'pending';
      if (part !== want) { sec.querySelector('[data-part="' + want + '"]').appendChild(item); }
    });
  }
  function counts() {
    var total = 0, unsaved = 0;
    DATA.checks.forEach(function (check) {
      var pend = 0, mine = 0;
      DATA.rows.forEach(function (r) {
        if (r.f.indexOf(check) < 0) { return; }
        if (pendingOf(r).indexOf(check) >= 0) { pend += 1; }
        if (local[r.s]) { mine += 1; }
      });
      var tr = document.querySelector('#review-table tr[data-check="' + check + '"]');
      if (tr) {
        tr.querySelector('.rv-pending').textContent = pend.toLocaleString('en');
        tr.querySelector('.rv-local').textContent = mine.toLocaleString('en');
      }
    });
    DATA.rows.forEach(function (r) {
      if (pendingOf(r).length) { total += 1; }
      if (local[r.s]) { unsaved += 1; }
    });
    document.querySelectorAll('.rv-pending-total').forEach(function (e) { e.textContent = total.toLocaleString('en'); });
    document.querySelectorAll('.rv-local-total').forEach(function (e) { e.textContent = unsaved.toLocaleString('en'); });
    document.querySelectorAll('section').forEach(function (sec) {
      var box = sec.querySelector('[data-part="decided"]'), n = sec.querySelector('.rv-decided .rv-n');
      if (box && n) { n.textContent = box.children.length; }
    });
  }
  function apply(shas) { save(); shas.forEach(show); counts(); }

  document.querySelectorAll('select[data-act="relabel"], select.rv-class').forEach(function (sel) {
    DATA.classes.forEach(function (k) {
      var o = document.createElement('option'); o.value = k; o.textContent = k; sel.appendChild(o);
    });
  });
  document.addEventListener('click', function (ev) {
    var b = ev.target.closest && ev.target.closest('button');
    if (!b) { return; }
    var rv = b.closest('.rv'), act = b.getAttribute('data-act');
    if (rv && act) {
      var sha = rv.getAttribute('data-sha');
      if (local[sha] && local[sha].decision === act) { delete local[sha]; } else { decide(sha, act); }
      apply([sha]);
      return;
    }
    var bulk = b.getAttribute('data-bulk'), grp = b.getAttribute('data-group'), done = [];
    if (bulk) {
      var box = b.closest('.rv-bulk'), check = box.getAttribute('data-check');
      var cls = box.querySelector('select.rv-class').value;
      DATA.rows.forEach(function (r) {
        if (pendingOf(r).indexOf(check) >= 0 && (!cls || r.l === cls)) { decide(r.s, bulk); done.push(r.s); }
      });
      say(bulk + ': ' + done.length + ' image(s) pending in ' + check + (cls ? " of class '" + cls + "'" : ''));
    } else if (grp) {
      var g = b.closest('.grp'), keeper = g.querySelector('.item.kept .rv');
      var keptSha = keeper ? keeper.getAttribute('data-sha') : null;
      g.querySelectorAll('.item .rv').forEach(function (el) {
        var sha = el.getAttribute('data-sha');
        if (grp === 'keep') { decide(sha, 'keep'); done.push(sha); }
        else if (sha !== keptSha && !el.closest('.item').classList.contains('kept')) { decide(sha, 'exclude'); done.push(sha); }
      });
      say(grp + ': ' + done.length + ' image(s) of the group');
    } else if (b.id === 'rv-download') {
      download();
      return;
    } else if (b.id === 'rv-clear') {
      done = Object.keys(local); local = {}; notes = {};
      say('forgot ' + done.length + ' unsaved choice(s)');
    } else { return; }
    apply(done.filter(function (s, i, a) { return a.indexOf(s) === i; }));
  });
  document.addEventListener('change', function (ev) {
    var t = ev.target, rv = t.closest && t.closest('.rv');
    if (t === byInput) { try { localStorage.setItem(BYKEY, byInput.value.trim()); } catch (e) { /* */ } return; }
    if (!rv) { return; }
    var sha = rv.getAttribute('data-sha');
    if (t.matches('select[data-act="relabel"]')) {
      if (t.value) { decide(sha, 'relabel', t.value); } else if (local[sha] && local[sha].decision === 'relabel') { delete local[sha]; }
    } else if (t.matches('.rv-note')) {
      notes[sha] = t.value;
      var cur = local[sha] || rows[sha].d;
      if (cur) { decide(sha, cur.decision, cur.label); }
    } else { return; }
    apply([sha]);
  });
  function cell(v) {
    v = String(v === undefined || v === null ? '' : v);
    if (/^[=+\-@\t\r]/.test(v)) { v = "'" + v; }  // never a formula in a spreadsheet
    return /[",\r\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
  }
  function download() {
    var shas = Object.keys(local).sort();
    if (!shas.length) { say('no unsaved choice to download'); return; }
    var lines = [DATA.columns.join(',')];
    shas.forEach(function (sha) {
      var c = local[sha];
      lines.push([sha, c.path, c.decision, c.label, c.note, c.by, c.at, c.checks.join(';')].map(cell).join(','));
    });
    var blob = new Blob([lines.join('\n') + '\n'], {type: 'text/csv;charset=utf-8'});
    var a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'reviews-' + now().replace(/[-:]/g, '').replace('T', '-').replace('Z', '') + '.csv';
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
    say('downloaded ' + shas.length + ' decision(s) as ' + a.download + ': run `dataqa review import ' + a.download + '`, then `dvc repro`');
  }
  var seen = {};
  document.querySelectorAll('.rv[data-sha]').forEach(function (el) {
    var sha = el.getAttribute('data-sha');
    if (!seen[sha] && rows[sha]) { seen[sha] = true; show(sha); }
  });
  counts();
})();
