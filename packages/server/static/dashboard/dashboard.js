// The operator's dashboard: polls the JSON API with the key it is given (status to read, publish
// to send); no dependencies.
const KEY = 'pushwire-api-key';
const SAMPLES = 60;
const $ = (id) => document.getElementById(id);

/** Readings of /v1/admin/stats, one per second, oldest first. */
const samples = [];
let device;
let statusTimer;
/** What the key may do (`GET /v1/keys/me`), once known. */
let powers;
const may = (scope) => !!powers && (powers.scopes.includes(scope) || powers.scopes.includes('admin'));

async function api(path, init = {}) {
  const res = await fetch(path, {
    ...init,
    headers: {
      authorization: `Bearer ${sessionStorage.getItem(KEY)}`,
      ...(init.body && { 'content-type': 'application/json' }),
    },
  });
  const body = res.status === 204 ? {} : await res.json();
  if (res.status === 401) {
    sessionStorage.removeItem(KEY);
    showLogin('That key was refused.');
    throw new Error(body.message);
  }
  if (!res.ok) throw new Error(body.message ?? `HTTP ${res.status}`);
  return body;
}

function showLogin(error = '') {
  $('login').hidden = false;
  $('board').hidden = true;
  $('logout').hidden = true;
  $('login-error').textContent = error;
}

function showBoard() {
  $('login').hidden = true;
  $('board').hidden = false;
  $('logout').hidden = false;
}

// ── live counts ────────────────────────────────────────────────────────────────────────────────

/** Learns what the key may do and shows it; the parts it may not use are hidden. */
async function login() {
  try {
    powers = await api('/v1/keys/me');
  } catch {
    return; // 401: shown by api()
  }
  const scopes = powers.scopes.includes('admin') ? ['admin (everything)'] : powers.scopes;
  const limits = [
    ...(powers.topics ? [`publishes to topics ${powers.topics.join(', ')}`] : []),
    ...(powers.rate ? [`${powers.rate} requests/s`] : []),
  ];
  $('powers').textContent =
    `Key ${powers.id}${powers.label ? ` (${powers.label})` : ''} may: ${scopes.join(', ')}` +
    (limits.length ? `; ${limits.join('; ')}` : '') +
    (may('status') ? '' : '. Without the status scope it cannot read counts, devices or delivery status.');
  $('stats').hidden = !may('status');
  $('lookup-section').hidden = !may('status');
  $('send-form').hidden = !may('publish');
  $('send-denied').hidden = may('publish');
  showBoard();
  void poll();
}

async function poll() {
  if (!sessionStorage.getItem(KEY) || !may('status')) return;
  try {
    const s = await api('/v1/admin/stats');
    showBoard();
    samples.push(s);
    if (samples.length > SAMPLES) samples.shift();
    render();
  } catch {
    // shown by api(); next tick retries
  }
}

/** Per-second rate of `field` between two readings. */
const rate = (a, b, field) => (b && a ? ((b[field] - a[field]) * 1000) / Math.max(1, b.now - a.now) : 0);
const fmt = (n) =>
  n >= 100 ? Math.round(n).toString() : n.toFixed(n >= 10 ? 1 : 2).replace(/\.?0+$/, '') || '0';

function render() {
  const last = samples.at(-1);
  const prev = samples.at(-2);
  $('server-info').textContent = `v${last.version} · up ${duration(last.now - last.startedAt)} ·`;
  $('s-connections').textContent = last.connections;
  $('s-sessions').textContent = last.sessions;
  $('s-refused').textContent = last.refused;
  for (const f of ['published', 'delivered', 'acked', 'handshakes'])
    $(`s-${f}`).textContent = fmt(rate(prev, last, f));
  const n = prev ? last.liveDeliveries - prev.liveDeliveries : 0;
  const avg =
    n > 0
      ? (last.latencySumMs - prev.latencySumMs) / n
      : last.liveDeliveries
        ? last.latencySumMs / last.liveDeliveries
        : NaN;
  $('s-latency').textContent = Number.isNaN(avg) ? '–' : `${fmt(avg)} ms`;
  $('totals').textContent =
    `${last.published} published, ${last.delivered} delivered, ${last.acked} acks, ${last.handshakes} sessions opened`;
  drawChart();
}

function drawChart() {
  const svg = $('chart');
  const W = 600;
  const H = 140;
  const pub = [];
  const del = [];
  for (let i = 1; i < samples.length; i++) {
    pub.push(rate(samples[i - 1], samples[i], 'published'));
    del.push(rate(samples[i - 1], samples[i], 'delivered'));
  }
  const max = Math.max(1, ...pub, ...del);
  const step = W / (SAMPLES - 1);
  const offset = W - (pub.length - 1) * step;
  const line = (values) =>
    values
      .map((v, i) => `${(offset + i * step).toFixed(1)},${(H - 4 - (v / max) * (H - 16)).toFixed(1)}`)
      .join(' ');
  const grid = [0.25, 0.5, 0.75]
    .map((f) => `<line x1="0" x2="${W}" y1="${H * f}" y2="${H * f}" class="grid"/>`)
    .join('');
  const baseline = `${(offset + (del.length - 1) * step).toFixed(1)},${H} ${offset.toFixed(1)},${H}`;
  $('chart-max').textContent = `${fmt(max)}/s`;
  // Delivered as a filled area, published as a line over it: equal rates stay visible.
  svg.innerHTML =
    grid +
    (pub.length > 1
      ? `<polygon class="del-area" points="${line(del)} ${baseline}"/><polyline class="del" points="${line(del)}"/>` +
        `<polyline class="pub" points="${line(pub)}"/>`
      : '');
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

/** Time of day for today, date and time otherwise. */
const time = (ms) => {
  if (!ms) return '–';
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
};

// ── device lookup ──────────────────────────────────────────────────────────────────────────────

async function lookup() {
  if (!device || !may('status')) return;
  const id = encodeURIComponent(device);
  try {
    const [d, m] = await Promise.all([api(`/v1/devices/${id}`), api(`/v1/devices/${id}/messages?limit=20`)]);
    $('lookup-error').textContent = '';
    $('device').hidden = false;
    $('d-online').textContent = d.online ? 'yes' : 'no';
    $('d-online').className = d.online ? 'ok' : 'muted';
    $('d-last-seen').textContent = d.online ? 'now' : time(d.lastSeen);
    $('d-pending').textContent = d.pending;
    $('d-heartbeat').textContent = d.heartbeat === null ? '–' : `${d.heartbeat} s`;
    $('d-user').textContent = d.user ?? '–';
    $('d-topics').textContent = d.topics.join(', ') || '–';
    const rows = m.messages.map((e) => {
      const tr = document.createElement('tr');
      tr.dataset.id = e.id;
      const title = e.notification?.title ?? (e.data === undefined ? '' : JSON.stringify(e.data));
      for (const text of [e.seq, title || e.id, time(e.ts), stateText(e)]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      tr.lastChild.className = `st-${e.state}`;
      tr.title = e.id;
      return tr;
    });
    $('d-messages').replaceChildren(...rows);
  } catch (err) {
    $('device').hidden = true;
    $('lookup-error').textContent = err.message;
    device = undefined;
  }
}

const stateText = (e) => (e.at ? `${e.state} ${time(e.at)}` : e.state);

// ── send and delivery status ───────────────────────────────────────────────────────────────────

async function send() {
  const kind = $('send-kind').value;
  const body = {
    to: { [kind]: $('send-to').value.trim() },
    notification: { title: $('send-title').value, body: $('send-body').value },
  };
  try {
    const r = await api('/v1/messages', { method: 'POST', body: JSON.stringify(body) });
    $('status-id').value = r.id;
    watchStatus(r.id);
  } catch (err) {
    $('status').textContent = `not sent: ${err.message}`;
  }
}

function watchStatus(id) {
  clearInterval(statusTimer);
  let left = 30;
  const tick = async () => {
    if (--left < 0) return clearInterval(statusTimer);
    try {
      const s = await api(`/v1/messages/${encodeURIComponent(id)}`);
      const lines = [
        `<strong>${escapeHtml(s.id)}</strong> published ${time(s.ts)}, expires ${time(s.expiresAt)}`,
      ];
      for (const d of s.devices)
        lines.push(`device ${escapeHtml(d.device)}: <span class="st-${d.state}">${stateText(d)}</span>`);
      for (const t of s.topics) {
        const c = t.counts;
        lines.push(
          `topic ${escapeHtml(t.topic)}: ${c.delivered} delivered, ${c.pending} pending, ${c.expired} expired, ${c.collapsed} collapsed`,
        );
      }
      if (s.devices.length + s.topics.length === 0) lines.push('no recipients');
      $('status').innerHTML = lines.join('<br>');
      if (s.devices.every((d) => d.state !== 'pending') && s.topics.every((t) => t.counts.pending === 0)) {
        clearInterval(statusTimer);
      }
    } catch (err) {
      $('status').textContent = err.message;
      clearInterval(statusTimer);
    }
    if (device) void lookup();
  };
  statusTimer = setInterval(tick, 1000);
  void tick();
}

const escapeHtml = (s) => String(s).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

// ── wiring ─────────────────────────────────────────────────────────────────────────────────────

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $('key').value.trim());
  void login();
});
$('logout').addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  powers = undefined;
  showLogin();
});
$('lookup-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  device = $('lookup-id').value.trim();
  void lookup();
});
$('send-kind').addEventListener('change', () => {
  $('send-to').placeholder = `${$('send-kind').value} ${$('send-kind').value === 'device' ? 'id' : 'name'}`;
});
$('send-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void send();
});
$('status-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  watchStatus($('status-id').value.trim());
});

const hashKey = new URLSearchParams(location.hash.slice(1)).get('key');
if (hashKey) {
  sessionStorage.setItem(KEY, hashKey);
  history.replaceState(null, '', location.pathname + location.search);
}
if (sessionStorage.getItem(KEY)) void login();
else showLogin();
setInterval(poll, 1000);
setInterval(lookup, 2000);
