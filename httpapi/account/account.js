// sessiond self-service page: lists the signed-in user's sessions and ends
// them through /v1/me/sessions. Every value from the server is written with
// textContent, never as HTML: user agents are anyone's to choose.
'use strict';

(function () {
  // Relative to /account/sessions, so a path prefix added by a proxy keeps working.
  const api = new URL('../v1/me/sessions', document.baseURI).pathname;
  // Cookie-authenticated writes must carry this header (CSRF protection).
  const writeHeaders = { 'X-Requested-With': 'sessiond', 'Accept': 'application/json' };

  const el = (id) => document.getElementById(id);
  const main = el('main');
  const signedIn = el('signed-in');
  const signedOut = el('signed-out');
  const status = el('status');
  const list = el('sessions');
  const loading = el('loading');
  const onlyThis = el('only-this');
  const count = el('session-count');
  const endOthers = el('end-others');

  const thisYear = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });
  const otherYear = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });
  const dateFormat = {
    format: (date) => (date.getFullYear() === new Date().getFullYear() ? thisYear : otherYear).format(date),
  };
  const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

  let busy = false;

  function say(message, isError) {
    status.textContent = message;
    status.classList.toggle('status-error', Boolean(isError));
    status.setAttribute('role', isError ? 'alert' : 'status');
  }

  function show(state) {
    main.dataset.state = state;
    signedIn.hidden = state !== 'signed-in';
    signedOut.hidden = state !== 'signed-out';
  }

  function focusHeading(id) {
    const h = el(id);
    if (h) {
      h.focus();
    }
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function relative(date) {
    const seconds = Math.round((date.getTime() - Date.now()) / 1000);
    const units = [['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400], ['hour', 3600], ['minute', 60]];
    for (const [unit, size] of units) {
      if (Math.abs(seconds) >= size) {
        return relativeFormat.format(Math.round(seconds / size), unit);
      }
    }
    return Math.abs(seconds) < 45 ? (seconds <= 0 ? 'just now' : 'in a moment') : relativeFormat.format(seconds, 'second');
  }

  function timeElement(iso, withRelative) {
    const date = new Date(iso);
    const t = make('time');
    t.dateTime = iso;
    if (withRelative) {
      t.textContent = relative(date);
      t.title = dateFormat.format(date);
    } else {
      t.textContent = dateFormat.format(date);
    }
    return t;
  }

  function fact(dl, label, value) {
    const row = make('div', 'fact');
    row.append(make('dt', '', label));
    const dd = make('dd');
    if (typeof value === 'string') {
      dd.textContent = value;
    } else {
      dd.append(value);
    }
    row.append(dd);
    dl.append(row);
  }

  function sessionItem(s) {
    const li = make('li', s.current ? 'session session-current' : 'session');
    li.dataset.sessionId = s.session_id;
    const title = s.device.label || s.device_name;

    const head = make('div', 'session-head');
    const h3 = make('h3', 'session-name', title);
    head.append(h3);
    if (s.current) {
      head.append(make('span', 'badge', 'This device'));
    }
    li.append(head);
    if (s.device.label && s.device.label !== s.device_name) {
      li.append(make('p', 'muted session-sub', s.device_name));
    }

    const dl = make('dl', 'facts');
    fact(dl, 'IP address', s.device.ip || 'unknown');
    fact(dl, 'Signed in', timeElement(s.created_at, false));
    fact(dl, 'Last active', timeElement(s.last_seen_at, true));
    const ends = new Date(s.refresh_expires_at) < new Date(s.expires_at) ? s.refresh_expires_at : s.expires_at;
    fact(dl, 'Expires', timeElement(ends, false));
    fact(dl, 'Remember me', s.remember_me ? 'Yes' : 'No');
    if (s.app && s.app !== 'default') {
      fact(dl, 'Application', s.app);
    }
    li.append(dl);

    const button = make('button', 'button end-session');
    button.type = 'button';
    button.append(document.createTextNode('End session'));
    button.append(make('span', 'visually-hidden', ' on ' + title + (s.current ? ' (this device)' : '')));
    button.addEventListener('click', () => endSession(s, title, button));
    li.append(button);
    return li;
  }

  function render(sessions) {
    list.replaceChildren(...sessions.map(sessionItem));
    loading.hidden = true;
    const others = sessions.filter((s) => !s.current).length;
    count.textContent = '(' + sessions.length + ')';
    endOthers.hidden = others === 0;
    onlyThis.hidden = others !== 0;
  }

  async function errorMessage(res) {
    try {
      const body = await res.json();
      if (body && body.error && body.error.message) {
        return body.error.message;
      }
    } catch (e) {
      // not JSON: fall through
    }
    return 'the server answered ' + res.status;
  }

  function signedOutNow(message) {
    list.replaceChildren();
    show('signed-out');
    say(message || 'Your session has ended.', false);
    focusHeading('signed-out-heading');
  }

  async function load() {
    let res;
    try {
      res = await fetch(api, { credentials: 'same-origin', headers: { 'Accept': 'application/json' }, cache: 'no-store' });
    } catch (e) {
      show('signed-in');
      say('Could not reach the server. Check your connection and reload the page.', true);
      return false;
    }
    if (res.status === 401) {
      list.replaceChildren();
      show('signed-out');
      return false;
    }
    if (!res.ok) {
      show('signed-in');
      say('Could not load your devices: ' + (await errorMessage(res)), true);
      return false;
    }
    const body = await res.json();
    show('signed-in');
    render(body.sessions || []);
    return true;
  }

  async function write(url) {
    return fetch(url, { method: 'DELETE', credentials: 'same-origin', headers: writeHeaders, cache: 'no-store' });
  }

  async function endSession(s, title, button) {
    if (busy) {
      return;
    }
    busy = true;
    button.disabled = true;
    try {
      let res;
      try {
        res = await write(api + '/' + encodeURIComponent(s.session_id));
      } catch (e) {
        say('Could not reach the server; the session was not ended.', true);
        return;
      }
      if (res.status === 401) {
        signedOutNow('You are no longer signed in.');
        return;
      }
      if (s.current && res.status === 204) {
        signedOutNow('You signed out of this device.');
        return;
      }
      if (res.status === 204) {
        say('Ended the session on ' + title + '.', false);
      } else if (res.status === 404) {
        say('That session had already ended.', false);
      } else {
        say('Could not end the session: ' + (await errorMessage(res)), true);
      }
      if (await load()) {
        focusHeading('devices-heading');
      }
    } finally {
      busy = false;
      button.disabled = false;
    }
  }

  async function signOutEverywhereElse() {
    if (busy) {
      return;
    }
    busy = true;
    endOthers.disabled = true;
    try {
      let res;
      try {
        res = await write(api);
      } catch (e) {
        say('Could not reach the server; no session was ended.', true);
        return;
      }
      if (res.status === 401) {
        signedOutNow('You are no longer signed in.');
        return;
      }
      if (!res.ok) {
        say('Could not sign out the other devices: ' + (await errorMessage(res)), true);
        return;
      }
      const body = await res.json();
      const n = body.revoked;
      say(n === 1 ? 'Signed out 1 other session.' : 'Signed out ' + n + ' other sessions.', false);
      if (await load()) {
        focusHeading('devices-heading');
      }
    } finally {
      busy = false;
      endOthers.disabled = false;
    }
  }

  endOthers.addEventListener('click', signOutEverywhereElse);
  if (main.dataset.state !== 'signed-out') {
    load();
  }
})();
