// sessiond admin console. Plain JavaScript, no build step, no dependencies.
//
// The admin key lives in the variable apiKey below and nowhere else: it is
// sent as X-API-Key on each call to the API of the node that served this
// page, and forgotten on sign-out or when the page goes away. Everything
// shown comes from the API and is inserted as text (textContent), never as
// markup.
(function () {
  'use strict';

  var apiKey = null;
  // generation changes on every sign-in and sign-out, so that answers to
  // requests made before it are dropped.
  var generation = 0;
  var currentView = 'cluster';

  var $ = function (id) { return document.getElementById(id); };

  // ---- small DOM helpers --------------------------------------------------

  // el builds an element: attrs are set as attributes (class, data-*, aria-*),
  // children are nodes or strings (inserted as text).
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        node.setAttribute(k, v === true ? '' : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  // cell builds a table cell whose content is wrapped in one element, so
  // that the stacked layout on phones can put the label beside it.
  function cell(tag, label, attrs) {
    var a = Object.assign({ 'data-label': label }, attrs || {});
    var wrap = el('div', { 'class': 'cv' });
    for (var i = 3; i < arguments.length; i++) append(wrap, arguments[i]);
    return el(tag, a, wrap);
  }

  function setText(id, text) { $(id).textContent = text === null || text === undefined ? '' : String(text); }

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  // timeEl shows an RFC 3339 time in the browser's time zone.
  function timeEl(iso) {
    if (!iso) return document.createTextNode('–');
    var d = new Date(iso);
    if (isNaN(d.getTime())) return document.createTextNode(iso);
    var text = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
    return el('time', { datetime: iso, title: iso }, text);
  }

  function clockNow() {
    var d = new Date();
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  // ---- API calls ----------------------------------------------------------

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.name = 'ApiError';

  // Stale: the answer belongs to a previous sign-in; drop it quietly.
  function Stale() { this.message = 'stale'; }
  Stale.prototype = Object.create(Error.prototype);
  Stale.prototype.name = 'Stale';

  // apiURL resolves an API path against this page (/ui/ → /v1/...), so
  // the console also works behind a proxy that mounts the node under a
  // prefix.
  function apiURL(path) { return new URL('../' + path, document.baseURI).toString(); }

  function isQuiet(err) { return err instanceof Stale || (err && err.name === 'AbortError'); }

  function describe(err) {
    if (err instanceof ApiError) {
      if (err.status === 0) return err.message;
      return err.message + ' (HTTP ' + err.status + (err.code ? ', ' + err.code : '') + ')';
    }
    return String(err && err.message ? err.message : err);
  }

  // api calls the admin API. opts: body (sent as JSON), signal, key (a key
  // to try instead of the signed-in one). It resolves to {status, index,
  // lastContact, data} and rejects with an ApiError.
  function api(method, path, opts) {
    opts = opts || {};
    var key = opts.key || apiKey;
    var gen = generation;
    if (!key) return Promise.reject(new Stale());
    var headers = { 'X-API-Key': key, 'Accept': 'application/json' };
    var init = {
      method: method, headers: headers, cache: 'no-store', credentials: 'omit',
      redirect: 'error', referrerPolicy: 'no-referrer', signal: opts.signal
    };
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    return fetch(apiURL(path), init).then(function (res) {
      return res.text().then(function (text) {
        if (gen !== generation) throw new Stale();
        var data = null;
        if (text) {
          try { data = JSON.parse(text); } catch (e) { data = null; }
        }
        if (!res.ok) {
          var e = data && data.error ? data.error : { code: '', message: res.statusText || 'request failed' };
          if (res.status === 401 && !opts.key) {
            // The key was rotated out: sign out; the caller has nothing
            // left to show.
            keyRejected();
            throw new Stale();
          }
          throw new ApiError(res.status, e.code, e.message);
        }
        return {
          status: res.status, data: data,
          index: res.headers.get('X-Sessiond-Index'),
          lastContact: res.headers.get('X-Sessiond-Last-Contact')
        };
      });
    }, function (err) {
      if (err && err.name === 'AbortError') throw err;
      if (gen !== generation) throw new Stale();
      throw new ApiError(0, 'network', 'The node did not answer: ' + (err && err.message ? err.message : err));
    });
  }

  function minIndexQuery(index) {
    return index ? '?min_index=' + encodeURIComponent(index) : '';
  }

  // ---- signing in and out -------------------------------------------------

  function signIn(event) {
    event.preventDefault();
    var input = $('signin-key');
    var key = input.value.trim();
    setText('signin-error', '');
    setText('signin-status', '');
    input.removeAttribute('aria-invalid');
    if (!key) {
      input.setAttribute('aria-invalid', 'true');
      setText('signin-error', 'Enter an admin API key.');
      input.focus();
      return;
    }
    var button = $('signin-submit');
    button.disabled = true;
    api('GET', 'v1/cluster', { key: key }).then(function (r) {
      apiKey = key;
      generation++;
      input.value = '';
      showSignedIn(r);
    }, function (err) {
      input.setAttribute('aria-invalid', 'true');
      if (err instanceof ApiError && err.status === 401) {
        setText('signin-error', 'That key was not accepted. Check it and try again.');
      } else {
        setText('signin-error', 'Could not sign in: ' + describe(err));
      }
      input.focus();
      input.select();
    }).then(function () { button.disabled = false; });
  }

  function showSignedIn(clusterAnswer) {
    $('view-signin').hidden = true;
    $('views').hidden = false;
    $('header-status').hidden = false;
    renderCluster(clusterAnswer.data);
    var applied = clusterAnswer.data ? Number(clusterAnswer.data.applied_index) || 0 : 0;
    feedStart(applied > 200 ? applied - 200 : 0);
    showView('cluster');
  }

  // signOut forgets the key and everything shown with it.
  function signOut(message, isError) {
    apiKey = null;
    generation++;
    stopClusterPolling();
    feedStop();
    feedReset();
    resetUsers();
    resetPolicy();
    resetCluster();
    closeConfirm(false);
    document.querySelectorAll('section.view').forEach(function (s) { s.hidden = true; });
    $('views').hidden = true;
    $('header-status').hidden = true;
    $('view-signin').hidden = false;
    setText('signin-error', isError ? message : '');
    setText('signin-status', isError ? '' : message);
    $('signin-key').removeAttribute('aria-invalid');
    $('signin-key').focus();
  }

  function keyRejected() {
    if (apiKey === null) return;
    signOut('The node no longer accepts this key. Sign in again.', true);
  }

  // ---- views --------------------------------------------------------------

  function showView(name, noFocus) {
    currentView = name;
    document.querySelectorAll('section.view').forEach(function (s) {
      s.hidden = s.id !== 'view-' + name;
    });
    document.querySelectorAll('.view-button').forEach(function (b) {
      if (b.getAttribute('data-view') === name) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    });
    if (!noFocus) {
      var title = $(name + '-title');
      if (title) title.focus();
    }
    if (name === 'cluster') startClusterPolling(); else stopClusterPolling();
    if (name === 'policy' && !policy.loaded && !policy.loading) loadPolicy();
    if (name === 'events') { feed.unseen = 0; renderUnseen(); }
  }

  // ---- cluster ------------------------------------------------------------

  var cluster = { loop: 0, timer: null, abort: null };
  var CLUSTER_EVERY = 2000;

  function clusterShouldPoll() {
    return apiKey !== null && currentView === 'cluster' && document.visibilityState === 'visible';
  }

  function startClusterPolling() {
    stopClusterPolling();
    if (!clusterShouldPoll()) return;
    var id = ++cluster.loop;
    clusterTick(id);
  }

  function stopClusterPolling() {
    cluster.loop++;
    clearTimeout(cluster.timer);
    cluster.timer = null;
    if (cluster.abort) cluster.abort.abort();
    cluster.abort = null;
  }

  function clusterTick(id) {
    var ctl = new AbortController();
    cluster.abort = ctl;
    api('GET', 'v1/cluster', { signal: ctl.signal }).then(function (r) {
      if (id !== cluster.loop) return;
      renderCluster(r.data);
      setText('cluster-error', '');
    }, function (err) {
      if (isQuiet(err) || id !== cluster.loop) return;
      setText('cluster-error', 'Could not refresh the cluster view: ' + describe(err));
    }).then(function () {
      if (id === cluster.loop && clusterShouldPoll()) {
        cluster.timer = setTimeout(function () { clusterTick(id); }, CLUSTER_EVERY);
      }
    });
  }

  function yesNo(v) { return v ? 'yes' : 'no'; }

  function renderCluster(d) {
    if (!d) return;
    setText('cluster-node', d.node_id + (d.region ? ' (' + d.region + ')' : ''));
    setText('cluster-leader', d.leader && d.leader.id ? d.leader.id : 'none known');
    setText('cluster-state', d.raft_state);
    setText('cluster-term', d.term);
    setText('cluster-applied', d.applied_index);
    setText('cluster-commit', d.commit_index);
    var contact;
    if (d.last_contact_ms < 0) contact = 'never heard from a leader';
    else if (d.raft_state === 'Leader') contact = '0 ms (this node is the leader)';
    else contact = d.last_contact_ms + ' ms ago';
    setText('cluster-contact', contact);
    setText('header-node', 'Node ' + d.node_id + ' · ' + d.raft_state);
    setText('cluster-updated', 'Updated ' + clockNow() + ', every 2 s');

    var body = $('members-body');
    clear(body);
    (d.members || []).forEach(function (m) {
      var status = String(m.status || 'unknown');
      body.appendChild(el('tr', { 'class': m.leader ? 'is-leader' : null, 'data-member': m.id },
        cell('th', 'Node', { scope: 'row' }, m.id,
          m.leader ? el('span', { 'class': 'chip leader' }, 'leader') : null,
          m.id === d.node_id ? el('span', { 'class': 'chip' }, 'this node') : null),
        cell('td', 'Region', null, m.region || '–'),
        cell('td', 'Voter', null, m.voter ? 'voter' : 'non-voter'),
        cell('td', 'Status', null, el('span', { 'class': 'chip status-' + status.replace(/[^a-z]/g, '') }, status)),
        cell('td', 'In Raft', null, yesNo(m.in_raft)),
        cell('td', 'Raft address', null, el('code', null, m.raft_addr || '–')),
        cell('td', 'HTTP address', null, el('code', null, m.http_addr || '–'))));
    });
  }

  function resetCluster() {
    ['cluster-node', 'cluster-leader', 'cluster-state', 'cluster-term', 'cluster-applied',
      'cluster-commit', 'cluster-contact'].forEach(function (id) { setText(id, '–'); });
    setText('cluster-updated', '');
    setText('cluster-error', '');
    setText('header-node', '');
    clear($('members-body'));
  }

  // ---- users and sessions -------------------------------------------------

  var ID_PATTERN = /^[A-Za-z0-9._@:+-]{1,128}$/;
  var users = { current: null, load: 0 };

  function findUser(event) {
    event.preventDefault();
    var input = $('user-id');
    var id = input.value.trim();
    setText('user-id-error', '');
    input.removeAttribute('aria-invalid');
    if (!ID_PATTERN.test(id)) {
      input.setAttribute('aria-invalid', 'true');
      setText('user-id-error', id ? 'A user id is 1–128 characters of letters, digits and . _ @ : + -' : 'Enter a user id.');
      input.focus();
      return;
    }
    users.current = id;
    setText('users-status', '');
    loadUser(null, false);
  }

  // loadUser reads the user's record and sessions, at least at the given
  // index (a write's X-Sessiond-Index), so a write just made is seen on
  // any node.
  function loadUser(index, focusSessions) {
    var id = users.current;
    if (!id) return Promise.resolve();
    var load = ++users.load;
    var enc = encodeURIComponent(id);
    var q = minIndexQuery(index);
    setText('users-error', '');
    return Promise.allSettled([
      api('GET', 'v1/users/' + enc + q),
      api('GET', 'v1/users/' + enc + '/sessions' + q)
    ]).then(function (out) {
      if (load !== users.load || users.current !== id) return;
      var rec = out[0], sess = out[1];
      if ([rec, sess].some(function (o) { return o.status === 'rejected' && o.reason instanceof Stale; })) return;
      $('user-result').hidden = false;
      if (rec.status === 'fulfilled') {
        renderRecord(rec.value.data);
      } else if (rec.reason instanceof ApiError && rec.reason.status === 404) {
        renderRecord(null);
      } else {
        renderRecord(null);
        setText('users-error', 'Could not read the user record: ' + describe(rec.reason));
      }
      if (sess.status === 'fulfilled') {
        renderSessions(id, sess.value.data.sessions || []);
      } else {
        renderSessions(id, []);
        setText('users-error', 'Could not list the sessions: ' + describe(sess.reason));
      }
      if (focusSessions) $('sessions-title').focus();
    });
  }

  function renderRecord(u) {
    $('user-record-none').hidden = u !== null;
    $('user-record').hidden = u === null;
    $('user-unlock').hidden = true;
    if (!u) return;
    setText('user-record-id', u.user_id);
    setText('user-record-email', u.email || 'none');
    setText('user-record-password', u.has_password ? 'set' : 'not set');
    var limit;
    if (u.max_sessions === null || u.max_sessions === undefined) limit = 'policy default';
    else if (u.max_sessions === 0) limit = 'unlimited (own setting)';
    else limit = String(u.max_sessions) + ' (own setting)';
    setText('user-record-limit', limit);
    var locked = $('user-record-locked');
    clear(locked);
    if (u.locked_until) {
      append(locked, [timeEl(u.locked_until), ' ', el('span', { 'class': 'chip status-dead' }, 'locked')]);
      $('user-unlock').hidden = false;
    } else {
      locked.textContent = 'not locked';
    }
  }

  function deviceCell(s) {
    var d = s.device || {};
    var parts = [];
    if (d.label) parts.push(el('strong', null, d.label));
    if (d.user_agent) parts.push(el('span', { 'class': 'ua' }, d.user_agent));
    if (!parts.length) parts.push(el('span', { 'class': 'muted' }, 'unknown device'));
    if (s.remember_me) parts.push(el('span', { 'class': 'chip' }, 'remember me'));
    return parts;
  }

  function renderSessions(user, list) {
    var body = $('sessions-body');
    clear(body);
    setText('sessions-count', '(' + list.length + ')');
    $('sessions-empty').hidden = list.length !== 0;
    $('sessions').hidden = list.length === 0;
    $('logout-all').disabled = list.length === 0;
    list.forEach(function (s) {
      var name = (s.device && s.device.label) || s.session_id;
      var revoke = el('button', { type: 'button', 'class': 'button danger small', 'data-revoke': s.session_id },
        'Revoke', el('span', { 'class': 'visually-hidden' }, ' session ' + name));
      body.appendChild(el('tr', { 'data-session-id': s.session_id },
        cell('td', 'Device', { 'class': 'device' }, deviceCell(s)),
        cell('td', 'IP', null, s.device && s.device.ip ? el('code', { 'class': 'ip' }, s.device.ip) : '–'),
        cell('td', 'Created', null, timeEl(s.created_at)),
        cell('td', 'Last seen', null, timeEl(s.last_seen_at)),
        cell('td', 'Expires', null, timeEl(s.expires_at),
          el('span', { 'class': 'sub' }, 'refresh until ', timeEl(s.refresh_expires_at))),
        cell('td', 'App', null, s.app),
        cell('td', 'Auth method', null, s.auth_method),
        cell('td', 'Session', null, el('code', { 'class': 'id' }, s.session_id)),
        cell('td', 'Actions', null, revoke)));
    });
  }

  function resetUsers() {
    users.current = null;
    users.load++;
    $('user-id').value = '';
    setText('user-id-error', '');
    setText('users-status', '');
    setText('users-error', '');
    $('user-result').hidden = true;
    clear($('sessions-body'));
  }

  function revokeSession(id, button) {
    var user = users.current;
    confirmAction('Revoke this session?',
      'Session ' + id + ' of ' + user + ' ends now: its access and refresh tokens stop working on every node.',
      'Revoke session', button).then(function (ok) {
      if (!ok) return;
      button.disabled = true;
      api('DELETE', 'v1/sessions/' + encodeURIComponent(id)).then(function (r) {
        setText('users-status', 'Session ' + id + ' revoked (index ' + r.index + ').');
        return loadUser(r.index, true);
      }, function (err) {
        if (isQuiet(err)) return;
        button.disabled = false;
        setText('users-error', 'Could not revoke session ' + id + ': ' + describe(err));
      });
    });
  }

  function logoutAll() {
    var user = users.current;
    var reason = $('logout-reason').value;
    var button = $('logout-all');
    confirmAction('Sign out every session of ' + user + '?',
      'All active sessions of ' + user + ' are revoked now, with the reason "' + reason + '".',
      'Sign out all sessions', button).then(function (ok) {
      if (!ok) return;
      button.disabled = true;
      api('DELETE', 'v1/users/' + encodeURIComponent(user) + '/sessions', { body: { reason: reason } }).then(function (r) {
        var n = r.data ? r.data.revoked : 0;
        setText('users-status', 'Signed out ' + n + ' session' + (n === 1 ? '' : 's') + ' of ' + user +
          ' (reason ' + reason + ', index ' + r.index + ').');
        return loadUser(r.index, true);
      }, function (err) {
        if (isQuiet(err)) return;
        button.disabled = false;
        setText('users-error', 'Could not sign out the sessions: ' + describe(err));
      });
    });
  }

  function unlockUser() {
    var user = users.current;
    var button = $('user-unlock');
    button.disabled = true;
    api('POST', 'v1/users/' + encodeURIComponent(user) + '/unlock').then(function (r) {
      setText('users-status', user + ' unlocked (index ' + r.index + ').');
      return loadUser(r.index, false).then(function () { $('user-record-title').focus(); });
    }, function (err) {
      if (isQuiet(err)) return;
      setText('users-error', 'Could not unlock ' + user + ': ' + describe(err));
    }).then(function () { button.disabled = false; });
  }

  // ---- confirmation dialog ------------------------------------------------

  var confirmState = null;

  function confirmAction(title, text, okLabel, returnFocus) {
    closeConfirm(false);
    return new Promise(function (resolve) {
      var dlg = $('confirm');
      setText('confirm-title', title);
      setText('confirm-text', text);
      setText('confirm-ok', okLabel);
      confirmState = { resolve: resolve, returnFocus: returnFocus };
      dlg.showModal();
      $('confirm-cancel').focus();
    });
  }

  function closeConfirm(answer) {
    var st = confirmState;
    confirmState = null;
    var dlg = $('confirm');
    if (dlg.open) dlg.close();
    if (!st) return;
    if (st.returnFocus && document.contains(st.returnFocus) && !st.returnFocus.disabled) st.returnFocus.focus();
    st.resolve(answer);
  }

  // ---- policy -------------------------------------------------------------

  var NS = 1n, US = 1000n, MS = 1000000n, SEC = 1000000000n, MIN = 60n * SEC, HOUR = 60n * MIN, DAY = 24n * HOUR;
  var UNITS = { ns: NS, us: US, 'µs': US, 'μs': US, ms: MS, s: SEC, m: MIN, h: HOUR };
  var MAX_DURATION = 9223372036854775807n;

  // parseDuration reads a duration in Go's syntax (time.ParseDuration)
  // into nanoseconds, or null when it is not one.
  function parseDuration(text) {
    var s = text;
    var neg = false;
    if (s[0] === '-' || s[0] === '+') { neg = s[0] === '-'; s = s.slice(1); }
    if (s === '0') return 0n;
    if (s === '') return null;
    var total = 0n;
    while (s !== '') {
      var num = /^(\d*)(?:\.(\d*))?/.exec(s);
      var whole = num[1], frac = num[2];
      if (whole === '' && !frac) return null;
      s = s.slice(num[0].length);
      var u = /^[^\d.]+/.exec(s);
      if (!u || !Object.prototype.hasOwnProperty.call(UNITS, u[0])) return null;
      s = s.slice(u[0].length);
      var unit = UNITS[u[0]];
      var v = BigInt(whole || '0') * unit;
      if (frac) v += BigInt(frac) * unit / (10n ** BigInt(frac.length));
      total += v;
      if (total > MAX_DURATION) return null;
    }
    return neg ? -total : total;
  }

  // formatDuration prints nanoseconds as Go's Duration.String does.
  function formatDuration(ns) {
    if (ns === 0n) return '0s';
    var neg = ns < 0n;
    if (neg) ns = -ns;
    var frac = function (v, div) {
      var w = v / div, f = v % div;
      if (f === 0n) return String(w);
      var digits = String(div).length - 1;
      var fs = String(f).padStart(digits, '0').replace(/0+$/, '');
      return w + '.' + fs;
    };
    var out;
    if (ns < SEC) {
      if (ns < US) out = ns + 'ns';
      else if (ns < MS) out = frac(ns, US) + 'µs';
      else out = frac(ns, MS) + 'ms';
    } else {
      var h = ns / HOUR, rest = ns % HOUR, m = rest / MIN;
      rest = rest % MIN;
      out = (h > 0n ? h + 'h' : '') + (h > 0n || m > 0n ? m + 'm' : '') + frac(rest, SEC) + 's';
    }
    return (neg ? '-' : '') + out;
  }

  // The ranges of docs/logins.md#policy-settings, as the node checks them.
  var DURATIONS = {
    access_ttl: { min: MIN, max: 129600n * MIN, range: '1m and 129600m (90 days)' },
    refresh_ttl: { min: MIN, max: 525600n * MIN, range: '1m and 525600m (365 days)' },
    absolute_ttl: { min: MIN, max: 365n * DAY, range: '1m and 8760h (365 days)' },
    idle_timeout: { min: MIN, max: 30n * DAY, zeroOff: true, range: '1m and 720h (30 days)' },
    remember_me_ttl: { min: HOUR, max: 365n * DAY, range: '1h and 8760h (365 days)' },
    refresh_reuse_grace: { min: 0n, max: 5n * MIN, range: '0 and 5m' },
    'lockout.window': { min: SEC, max: 30n * DAY, range: '1s and 720h (30 days)', lockout: true },
    'lockout.duration': { min: SEC, max: 30n * DAY, range: '1s and 720h (30 days)', lockout: true }
  };
  var INTEGERS = {
    max_sessions_per_user: { min: 0, max: 10000 },
    'lockout.max_failures': { min: 0, max: 1000 }
  };
  var CHECKBOXES = ['sliding_refresh', 'force_logout_on_password_change'];
  // Every field the node may name in an error, longest first.
  var FIELDS = Object.keys(DURATIONS).concat(Object.keys(INTEGERS), CHECKBOXES,
    ['on_session_limit', 'app_max_sessions']).sort(function (a, b) { return b.length - a.length; });

  var policy = { loaded: false, loading: false, rows: 0 };

  function input(name) { return $('policy-' + name); }

  function setFieldError(name, message, target) {
    var err = $('err-' + name);
    if (err) err.textContent = message || '';
    var field = target || input(name);
    if (field) {
      if (message) field.setAttribute('aria-invalid', 'true');
      else field.removeAttribute('aria-invalid');
    }
  }

  function clearPolicyErrors() {
    document.querySelectorAll('#policy-form .error').forEach(function (p) { p.textContent = ''; });
    document.querySelectorAll('#policy-form [aria-invalid]').forEach(function (f) { f.removeAttribute('aria-invalid'); });
    setText('policy-error', '');
  }

  function lockoutOn() {
    var v = input('lockout.max_failures').value.trim();
    return /^\d+$/.test(v) && Number(v) > 0;
  }

  // checkField checks one field and shows its message; it answers the
  // message ('' when the value is good).
  function checkField(name) {
    var msg = '';
    if (DURATIONS[name]) {
      var r = DURATIONS[name];
      var f = input(name);
      if (name === 'refresh_ttl' && input('refresh_ttl_follows_access').checked) {
        setFieldError(name, '');
        return '';
      }
      var text = f.value.trim();
      var d = parseDuration(text);
      if (d === null) {
        msg = name + ' must be a Go duration such as 15m or 36h' + (text ? ' (got "' + text + '")' : '');
      } else if (r.zeroOff && d === 0n) {
        msg = '';
      } else if ((d < r.min || d > r.max) && (!r.lockout || lockoutOn())) {
        msg = name + ' must be ' + (r.zeroOff ? '0 (off) or ' : '') + 'between ' + r.range + ' (got ' + formatDuration(d) + ')';
      }
    } else if (INTEGERS[name]) {
      var n = INTEGERS[name];
      var v = input(name).value.trim();
      if (!/^-?\d+$/.test(v) || Number(v) < n.min || Number(v) > n.max) {
        msg = name + ' must be a whole number between ' + n.min + ' and ' + n.max + (v ? ' (got ' + v + ')' : '');
      }
    } else if (name === 'on_session_limit') {
      var o = input(name).value;
      if (o !== 'deny' && o !== 'evict_oldest') msg = 'on_session_limit must be deny or evict_oldest';
    }
    setFieldError(name, msg);
    return msg;
  }

  // checkAppLimits checks the rows of app_max_sessions; it answers the
  // first field in error, or null.
  function checkAppLimits() {
    var first = null;
    var seen = {};
    setFieldError('app_max_sessions', '', $('app-limits'));
    document.querySelectorAll('#app-limits li').forEach(function (li) {
      var app = li.querySelector('.app-id'), lim = li.querySelector('.app-max'), err = li.querySelector('.error');
      var a = app.value.trim(), l = lim.value.trim();
      var msg = '', bad = null;
      if (!ID_PATTERN.test(a)) {
        msg = 'app ids are 1–128 characters of letters, digits and . _ @ : + -';
        bad = app;
      } else if (seen[a]) {
        msg = 'app ' + a + ' is listed twice';
        bad = app;
      } else if (!/^\d+$/.test(l) || Number(l) < 1 || Number(l) > 10000) {
        msg = 'app_max_sessions.' + a + ' must be a whole number between 1 and 10000' + (l ? ' (got ' + l + ')' : '');
        bad = lim;
      }
      seen[a] = true;
      err.textContent = msg;
      [app, lim].forEach(function (f) {
        if (f === bad) f.setAttribute('aria-invalid', 'true'); else f.removeAttribute('aria-invalid');
      });
      if (bad && !first) first = bad;
    });
    return first;
  }

  function addAppRow(app, max, focus) {
    var n = ++policy.rows;
    var appId = 'app-id-' + n, maxId = 'app-max-' + n, errId = 'app-err-' + n;
    var remove = el('button', { type: 'button', 'class': 'button secondary small' }, 'Remove',
      el('span', { 'class': 'visually-hidden' }, ' this app limit'));
    var li = el('li', null,
      el('div', { 'class': 'field compact' },
        el('label', { 'for': appId }, 'App id'),
        el('input', { id: appId, 'class': 'app-id', type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: 128, 'aria-describedby': errId })),
      el('div', { 'class': 'field compact' },
        el('label', { 'for': maxId }, 'Maximum sessions'),
        el('input', { id: maxId, 'class': 'app-max', type: 'text', inputmode: 'numeric', autocomplete: 'off', 'aria-describedby': errId })),
      remove,
      el('p', { id: errId, 'class': 'error', 'aria-live': 'polite' }));
    li.querySelector('.app-id').value = app || '';
    li.querySelector('.app-max').value = max === undefined ? '' : String(max);
    remove.addEventListener('click', function () {
      li.remove();
      $('app-limit-add').focus();
    });
    $('app-limits').appendChild(li);
    if (focus) li.querySelector('.app-id').focus();
  }

  function syncRefreshFollows() {
    var follows = input('refresh_ttl_follows_access').checked;
    var f = input('refresh_ttl');
    f.disabled = follows;
    if (follows) {
      var a = parseDuration(input('access_ttl').value.trim());
      if (a !== null) f.value = formatDuration(a * 3n / 2n);
      setFieldError('refresh_ttl', '');
    }
  }

  function fillPolicy(p) {
    Object.keys(DURATIONS).forEach(function (name) {
      var v = name.indexOf('lockout.') === 0 ? (p.lockout || {})[name.slice(8)] : p[name];
      input(name).value = v === undefined || v === null ? '' : v;
    });
    input('max_sessions_per_user').value = p.max_sessions_per_user;
    input('lockout.max_failures').value = p.lockout ? p.lockout.max_failures : '';
    input('sliding_refresh').checked = !!p.sliding_refresh;
    input('force_logout_on_password_change').checked = !!p.force_logout_on_password_change;
    input('refresh_ttl_follows_access').checked = !!p.refresh_ttl_follows_access;
    input('on_session_limit').value = p.on_session_limit;
    clear($('app-limits'));
    var apps = p.app_max_sessions || {};
    Object.keys(apps).sort().forEach(function (a) { addAppRow(a, apps[a], false); });
    syncRefreshFollows();
    clearPolicyErrors();
  }

  function loadPolicy() {
    policy.loading = true;
    setText('policy-status', 'Loading…');
    return api('GET', 'v1/policy').then(function (r) {
      fillPolicy(r.data);
      policy.loaded = true;
      setText('policy-status', 'Policy as of index ' + r.index + '.');
    }, function (err) {
      if (isQuiet(err)) return;
      setText('policy-status', '');
      setText('policy-error', 'Could not read the policy: ' + describe(err));
    }).then(function () { policy.loading = false; });
  }

  function policyBody() {
    var v = function (name) { return input(name).value.trim(); };
    var apps = {};
    document.querySelectorAll('#app-limits li').forEach(function (li) {
      apps[li.querySelector('.app-id').value.trim()] = Number(li.querySelector('.app-max').value.trim());
    });
    var follows = input('refresh_ttl_follows_access').checked;
    return {
      access_ttl: v('access_ttl'),
      refresh_ttl: follows ? null : v('refresh_ttl'),
      refresh_ttl_follows_access: follows,
      absolute_ttl: v('absolute_ttl'),
      idle_timeout: v('idle_timeout'),
      sliding_refresh: input('sliding_refresh').checked,
      remember_me_ttl: v('remember_me_ttl'),
      max_sessions_per_user: Number(v('max_sessions_per_user')),
      app_max_sessions: apps,
      on_session_limit: input('on_session_limit').value,
      lockout: {
        max_failures: Number(v('lockout.max_failures')),
        window: v('lockout.window'),
        duration: v('lockout.duration')
      },
      force_logout_on_password_change: input('force_logout_on_password_change').checked,
      refresh_reuse_grace: v('refresh_reuse_grace')
    };
  }

  // showServerError puts the node's 400 message next to the field it names.
  function showServerError(message) {
    var target = null;
    if (message.indexOf('app_max_sessions.') === 0) {
      var rest = message.slice('app_max_sessions.'.length);
      document.querySelectorAll('#app-limits li').forEach(function (li) {
        var a = li.querySelector('.app-id').value.trim();
        if (!target && a && rest.indexOf(a + ' ') === 0) {
          li.querySelector('.error').textContent = message;
          target = li.querySelector('.app-max');
          target.setAttribute('aria-invalid', 'true');
        }
      });
    }
    if (!target) {
      var name = null;
      for (var i = 0; i < FIELDS.length; i++) {
        var f = FIELDS[i];
        if (message.indexOf(f) === 0 && /^[\s:.]/.test(message.slice(f.length))) { name = f; break; }
      }
      if (name === 'app_max_sessions') {
        setFieldError(name, message, $('app-limits'));
        target = $('app-limit-add');
      } else if (name) {
        setFieldError(name, message);
        target = input(name);
      }
    }
    setText('policy-error', 'The node refused the policy: ' + message);
    if (target) target.focus();
  }

  function savePolicy(event) {
    event.preventDefault();
    clearPolicyErrors();
    setText('policy-status', '');
    var first = null;
    ['access_ttl', 'refresh_ttl', 'absolute_ttl', 'idle_timeout', 'remember_me_ttl', 'refresh_reuse_grace',
      'max_sessions_per_user', 'on_session_limit', 'lockout.max_failures', 'lockout.window', 'lockout.duration'
    ].forEach(function (name) {
      if (checkField(name) && !first) first = input(name);
    });
    var appBad = checkAppLimits();
    if (!first) first = appBad;
    if (first) {
      setText('policy-error', 'Some values are out of range: see the messages next to the fields.');
      first.focus();
      return;
    }
    var button = $('policy-save');
    button.disabled = true;
    api('PUT', 'v1/policy', { body: policyBody() }).then(function (r) {
      fillPolicy(r.data);
      setText('policy-status', 'Policy saved (index ' + r.index + '). It applies to sessions created from now on.');
    }, function (err) {
      if (isQuiet(err)) return;
      if (err instanceof ApiError && err.status === 400) showServerError(err.message);
      else setText('policy-error', 'Could not save the policy: ' + describe(err));
    }).then(function () { button.disabled = false; });
  }

  function resetPolicy() {
    policy.loaded = false;
    $('policy-form').reset();
    clear($('app-limits'));
    clearPolicyErrors();
    setText('policy-status', '');
  }

  // ---- event feed ---------------------------------------------------------

  var FEED_MAX = 200;
  var feed = {
    abort: null, timer: null, flushTimer: null, lastId: null, startAfter: 0,
    paused: false, retry: 0, queue: [], unseen: 0, newest: 0
  };

  function setFeedState(text) { setText('events-state', text); }

  function feedStart(after) {
    feed.startAfter = after;
    feed.lastId = null;
    feed.paused = false;
    syncPauseButton();
    feedConnect();
  }

  function feedStop() {
    clearTimeout(feed.timer);
    feed.timer = null;
    if (feed.abort) feed.abort.abort();
    feed.abort = null;
  }

  function feedReset() {
    feed.lastId = null;
    feed.queue = [];
    feed.unseen = 0;
    feed.newest = 0;
    feed.retry = 0;
    feed.paused = false;
    syncPauseButton();
    clear($('events-body'));
    renderUnseen();
    setFeedState('');
  }

  function feedReconnect(why) {
    if (apiKey === null || feed.paused) return;
    var delay = Math.min(30000, 1000 * Math.pow(2, feed.retry));
    feed.retry++;
    setFeedState('Disconnected (' + why + '); reconnecting in ' + Math.round(delay / 1000) + ' s…');
    clearTimeout(feed.timer);
    feed.timer = setTimeout(feedConnect, delay);
  }

  // feedConnect reads GET /v1/events as a stream. EventSource cannot send
  // the X-API-Key header, so the stream is read with fetch and parsed here;
  // a reconnect sends Last-Event-ID and resumes after the last event seen.
  function feedConnect() {
    feedStop();
    if (apiKey === null || feed.paused) return;
    var ctl = new AbortController();
    feed.abort = ctl;
    var gen = generation;
    var headers = { 'X-API-Key': apiKey, 'Accept': 'text/event-stream' };
    var path = 'v1/events';
    if (feed.lastId !== null) headers['Last-Event-ID'] = feed.lastId;
    else if (feed.startAfter > 0) path += '?after=' + feed.startAfter;
    setFeedState(feed.lastId === null ? 'Connecting…' : 'Reconnecting after index ' + feed.lastId + '…');
    fetch(apiURL(path), {
      headers: headers, cache: 'no-store', credentials: 'omit', redirect: 'error',
      referrerPolicy: 'no-referrer', signal: ctl.signal
    }).then(function (res) {
      if (gen !== generation || ctl.signal.aborted) return;
      if (res.status === 401) { keyRejected(); return; }
      if (res.status === 410) {
        // This node no longer holds the events after our position: start
        // again from the oldest it holds, and say that some were missed.
        feed.lastId = null;
        feed.startAfter = 0;
        queueEvent({ gap: true });
        feedConnect();
        return;
      }
      if (!res.ok || !res.body) { feedReconnect('HTTP ' + res.status); return; }
      feed.retry = 0;
      setFeedState('Live');
      return readStream(res.body, ctl).then(function () {
        if (gen !== generation || ctl.signal.aborted) return;
        feedReconnect('the stream ended');
      });
    }).catch(function (err) {
      if (gen !== generation || ctl.signal.aborted) return;
      feedReconnect(err && err.message ? err.message : 'network error');
    });
  }

  // readStream parses Server-Sent Events: "field: value" lines, an empty
  // line ends an event, lines starting with ":" are comments.
  function readStream(body, ctl) {
    var reader = body.pipeThrough(new TextDecoderStream()).getReader();
    var buf = '';
    var ev = { id: null, type: '', data: [] };
    function line(l) {
      if (l === '') {
        if (ev.id !== null) feed.lastId = ev.id;
        if (ev.data.length) {
          try {
            queueEvent(JSON.parse(ev.data.join('\n')));
          } catch (e) { /* not JSON: skipped */ }
        }
        ev = { id: null, type: '', data: [] };
        return;
      }
      if (l[0] === ':') return;
      var i = l.indexOf(':');
      var field = i < 0 ? l : l.slice(0, i);
      var value = i < 0 ? '' : l.slice(i + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'id' && value.indexOf('\0') < 0) ev.id = value;
      else if (field === 'event') ev.type = value;
      else if (field === 'data') ev.data.push(value);
    }
    function pump() {
      return reader.read().then(function (r) {
        if (r.done || ctl.signal.aborted) return;
        buf += r.value;
        var nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          var l = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (l.slice(-1) === '\r') l = l.slice(0, -1);
          line(l);
        }
        return pump();
      });
    }
    return pump();
  }

  function queueEvent(e) {
    if (!e.gap) {
      if (e.index <= feed.newest) return;
      feed.newest = e.index;
    }
    feed.queue.push(e);
    if (!feed.flushTimer) feed.flushTimer = setTimeout(flushEvents, 50);
  }

  // Events whose count is a number of sessions.
  var COUNTS_SESSIONS = {
    SessionRevoked: true, UserForceLoggedOut: true, SessionsBulkRevoked: true, SessionsExpired: true,
    SessionsTouched: true, UserDeleted: true, UserCredentialsSet: true, SessionCreated: true
  };

  function outcome(e) {
    if (e.error) return el('span', { 'class': 'chip status-dead' }, 'refused: ' + e.error);
    var count = null;
    if (e.count) {
      count = COUNTS_SESSIONS[e.type] ? e.count + ' session' + (e.count === 1 ? '' : 's') : 'count ' + e.count;
    }
    return [el('span', { 'class': 'chip ' + (e.duplicate ? '' : 'status-alive') }, e.duplicate ? 'duplicate, not applied again' : 'applied'),
      count ? el('span', { 'class': 'sub' }, count) : null];
  }

  function eventRow(e) {
    if (e.gap) {
      return el('tr', { 'class': 'gap' }, el('td', { colspan: 7 },
        'Some events were missed: this node no longer held them. The feed continues from the oldest event it holds.'));
    }
    var reason = [e.reason, e.scope ? (e.reason ? ' · ' : '') + e.scope : null];
    var detail = [e.app ? 'app ' + e.app : null, e.auth_method].filter(Boolean).join(' · ');
    return el('tr', { 'data-index': e.index, 'data-type': e.type, 'data-session-id': e.session_id || null },
      cell('td', 'Index', null, String(e.index)),
      cell('td', 'Time', null, timeEl(e.time)),
      cell('th', 'Type', { scope: 'row' }, e.type, detail ? el('span', { 'class': 'sub' }, detail) : null),
      cell('td', 'User', null, e.user_id || '–'),
      cell('td', 'Session', null, e.session_id ? el('code', { 'class': 'id' }, e.session_id) : '–'),
      cell('td', 'Reason', null, e.reason || e.scope ? reason : '–'),
      cell('td', 'Outcome', null, outcome(e)));
  }

  function flushEvents() {
    feed.flushTimer = null;
    var q = feed.queue;
    feed.queue = [];
    if (!q.length || apiKey === null) return;
    if (q.length > FEED_MAX) q = q.slice(q.length - FEED_MAX);
    var body = $('events-body');
    var frag = document.createDocumentFragment();
    for (var i = q.length - 1; i >= 0; i--) frag.appendChild(eventRow(q[i]));
    body.insertBefore(frag, body.firstChild);
    while (body.children.length > FEED_MAX) body.removeChild(body.lastChild);
    if (currentView !== 'events') {
      feed.unseen += q.filter(function (e) { return !e.gap; }).length;
      renderUnseen();
    }
  }

  function renderUnseen() {
    var b = $('events-unseen');
    b.hidden = feed.unseen === 0;
    b.textContent = feed.unseen > 999 ? '999+ new' : feed.unseen + ' new';
  }

  function syncPauseButton() {
    var b = $('events-pause');
    b.textContent = feed.paused ? 'Resume' : 'Pause';
    b.setAttribute('aria-pressed', feed.paused ? 'true' : 'false');
  }

  function togglePause() {
    feed.paused = !feed.paused;
    syncPauseButton();
    if (feed.paused) {
      feedStop();
      setFeedState('Paused' + (feed.lastId !== null ? ' after index ' + feed.lastId : '') +
        '; resuming catches up from there.');
    } else {
      feed.retry = 0;
      feedConnect();
    }
  }

  // ---- wiring -------------------------------------------------------------

  function init() {
    $('signin-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', function () { signOut('Signed out. The key has been forgotten.'); });
    document.querySelectorAll('.view-button').forEach(function (b) {
      b.addEventListener('click', function () { showView(b.getAttribute('data-view')); });
    });
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible') startClusterPolling(); else stopClusterPolling();
    });

    $('user-form').addEventListener('submit', findUser);
    $('sessions-body').addEventListener('click', function (e) {
      var b = e.target.closest('button[data-revoke]');
      if (b) revokeSession(b.getAttribute('data-revoke'), b);
    });
    $('logout-all').addEventListener('click', logoutAll);
    $('sessions-reload').addEventListener('click', function () { loadUser(null, false); });
    $('user-unlock').addEventListener('click', unlockUser);

    $('confirm-form').addEventListener('submit', function (e) { e.preventDefault(); closeConfirm(true); });
    $('confirm-cancel').addEventListener('click', function () { closeConfirm(false); });
    $('confirm').addEventListener('cancel', function (e) { e.preventDefault(); closeConfirm(false); });

    $('policy-form').addEventListener('submit', savePolicy);
    $('policy-reload').addEventListener('click', function () {
      setText('policy-status', '');
      loadPolicy();
    });
    $('app-limit-add').addEventListener('click', function () { addAppRow('', '', true); });
    $('app-limits').addEventListener('change', function () { checkAppLimits(); });
    input('refresh_ttl_follows_access').addEventListener('change', syncRefreshFollows);
    // A field is checked when it is left; once in error, it is checked as
    // it is typed in, so the message goes as soon as the value is good
    // (and not at the click on Save, which would move the button).
    Object.keys(DURATIONS).concat(Object.keys(INTEGERS)).forEach(function (name) {
      var f = input(name);
      var check = function () {
        checkField(name);
        if (name === 'access_ttl') syncRefreshFollows();
        if (name === 'lockout.max_failures') { checkField('lockout.window'); checkField('lockout.duration'); }
      };
      f.addEventListener('change', check);
      f.addEventListener('input', function () {
        if (f.getAttribute('aria-invalid') === 'true') check();
        else if (name === 'access_ttl') syncRefreshFollows();
      });
    });

    $('events-pause').addEventListener('click', togglePause);
    $('events-clear').addEventListener('click', function () { clear($('events-body')); });

    $('signin-key').focus();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
}());
