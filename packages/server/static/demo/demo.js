// The demo page: this tab is a Pushwire device. It uses the browser SDK as any app would.
import { createClient, localStorageStorage } from '/sdk/pushwire.mjs';

/** Where the SDK keeps credentials, cursors and the dedupe window. */
const STATE_KEY = 'pushwire-demo';
/** A pasted register key (servers without a demo key); this tab only. */
const API_KEY = 'pushwire-register-key';
/** The demo's register key, from `/demo/config.json`. */
let demoKey = null;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
/** `?heartbeat=5` shortens the heartbeat (tests, flaky networks); default 30 s. */
const heartbeat = Number(params.get('heartbeat')) || 30;

let client;
let received = 0;
/** Set while the page itself closes the client (forget, re-register): not a failure to show. */
let closingOnPurpose = false;

function storedDevice() {
  try {
    return JSON.parse(localStorage.getItem(STATE_KEY) ?? 'null')?.credentials;
  } catch {
    return undefined;
  }
}

function start(register) {
  $('setup').hidden = true;
  client = createClient({
    url: location.origin,
    storage: localStorageStorage(STATE_KEY),
    heartbeat: { interval: heartbeat, pongTimeout: 5 },
    backoff: { initial: 250, max: 5000 },
    ...(register && { register }),
  });
  client.on('state', ({ to }) => showState(to));
  client.on('message', onMessage);
  client.on('notification', notify);
  client.on('error', (err) => {
    if (err.serverCode === 'REPLACED') return openElsewhere();
    $('error').hidden = false;
    $('error').textContent = `${err.name}: ${err.message}`;
    if (err.name === 'AuthError' && storedDevice()) {
      $('error').textContent += ' (the stored device is not known to the server: register again)';
    }
  });
  window.pushwireDemo = { client };
}

/**
 * The stored device is open in another tab (or window) of this browser: this tab stops instead of
 * taking the device back, which would make the two tabs replace each other forever.
 */
async function openElsewhere() {
  closingOnPurpose = true;
  await client?.close();
  closingOnPurpose = false;
  $('elsewhere').hidden = false;
  $('device').hidden = true;
}

/**
 * One tab holds the device: a Web Lock (where the browser has them; held until the tab closes).
 * Resolves true when this tab got it; false when another tab has it (then this tab waits).
 */
function holdDevice() {
  if (!navigator.locks) return Promise.resolve(true);
  return new Promise((resolve) => {
    navigator.locks.request(STATE_KEY, { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock === null ? undefined : new Promise(() => {});
    });
  });
}

function showState(state) {
  const el = $('state');
  el.textContent = state;
  el.className = `state state-${state}`;
  if (state === 'open') {
    $('error').hidden = true;
    showDevice();
  }
  // A refused registration (wrong key) closes the client: ask for the key again.
  if (state === 'closed' && !closingOnPurpose) showSetup();
}

function showDevice() {
  const id = client.deviceId;
  $('device').hidden = false;
  $('device-id').textContent = id;
  $('heartbeat').textContent = client.heartbeatInterval;
  $('cursors').textContent = JSON.stringify(client.cursors);
  const server = location.origin;
  $('cmd-cli').textContent =
    `npx pushwire publish --server ${server} \\\n` +
    `  --device ${id} --title "Hello" --body "from Pushwire"`;
  $('cmd-curl').textContent =
    `curl -X POST ${server}/v1/messages \\\n` +
    `  -H "Authorization: Bearer $PUSHWIRE_API_KEY" -H 'content-type: application/json' \\\n` +
    `  -d '{"to":{"device":"${id}"},"notification":{"title":"Hello","body":"from Pushwire"}}'`;
}

function onMessage(m) {
  received++;
  $('count').textContent = received;
  $('empty').hidden = true;
  const li = document.createElement('li');
  li.dataset.id = m.id;
  li.dataset.seq = m.seq;
  const when = new Date(m.ts).toLocaleTimeString();
  const title = m.notification?.title ?? '(no notification)';
  li.innerHTML = '<strong></strong> <span class="body"></span><div class="meta"></div>';
  li.querySelector('strong').textContent = title;
  li.querySelector('.body').textContent = m.notification?.body ?? '';
  const data = m.data === undefined ? '' : ` · data ${JSON.stringify(m.data)}`;
  li.querySelector('.meta').textContent = `${m.stream} #${m.seq} · ${when} · ${m.id}${data}`;
  $('messages').prepend(li);
}

function notify(m) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const { title, body, icon, tag, url } = m.notification;
  const n = new Notification(title ?? 'Pushwire', {
    body: body ?? '',
    ...(icon && { icon }),
    ...(tag && { tag }),
  });
  // Only web addresses are opened (the server refuses others at publish; this is the second fence).
  if (typeof url === 'string' && /^https?:\/\//i.test(url)) {
    n.onclick = () => window.open(url, '_blank', 'noopener,noreferrer');
  }
}

function showPermission() {
  const p = 'Notification' in window ? Notification.permission : 'unsupported';
  $('permission').textContent = p;
  $('ask-permission').hidden = p !== 'default';
}

$('ask-permission').addEventListener('click', async () => {
  await Notification.requestPermission();
  showPermission();
});

$('register-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const apiKey = demoKey ?? $('api-key').value.trim();
  if (!demoKey) sessionStorage.setItem(API_KEY, apiKey);
  // Registering always starts a new device (after a refused one, or a deleted stored one).
  closingOnPurpose = true;
  await client?.close();
  closingOnPurpose = false;
  localStorage.removeItem(STATE_KEY);
  start({ apiKey });
});

$('forget').addEventListener('click', async () => {
  closingOnPurpose = true;
  await client?.close();
  localStorage.removeItem(STATE_KEY);
  location.reload();
});

$('test-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  // The device sends to itself, with its own credential: no publish key in the page.
  const creds = storedDevice();
  const res = await fetch(`/v1/devices/${encodeURIComponent(client.deviceId)}/echo`, {
    method: 'POST',
    headers: {
      authorization: `Device ${creds?.deviceId}:${creds?.token}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ notification: { title: $('test-title').value, body: $('test-body').value } }),
  });
  const body = await res.json();
  $('test-result').textContent = res.ok ? `accepted: ${body.id}` : `${res.status} ${body.message}`;
});

$('follow-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const topic = $('follow-topic').value.trim();
  try {
    await client.subscribe(topic);
    $('follow-result').textContent = `following ${topic}`;
  } catch (err) {
    $('follow-result').textContent = `${err.name}: ${err.message}`;
  }
});

// Cursors move once a message is persisted and acknowledged: show them as they are.
setInterval(() => {
  if (client?.state === 'open') $('cursors').textContent = JSON.stringify(client.cursors);
}, 1000);

$('use-here').addEventListener('click', () => {
  // Take the device over: the other tab is told (REPLACED) and stops.
  $('elsewhere').hidden = true;
  if (navigator.locks) navigator.locks.request(STATE_KEY, { steal: true }, () => new Promise(() => {}));
  start();
});

function showSetup() {
  $('setup').hidden = false;
  $('setup-demo').hidden = !demoKey;
  $('setup-paste').hidden = !!demoKey;
  $('api-key-label').hidden = !!demoKey;
  $('api-key').required = !demoKey;
  if (!demoKey) $('api-key').value = sessionStorage.getItem(API_KEY) ?? '';
}

showPermission();
try {
  demoKey = (await (await fetch('/demo/config.json')).json()).registerKey ?? null;
} catch {
  demoKey = null;
}
// One tab holds the device at a time: another tab says so and offers to take it over.
if (!(await holdDevice()) && storedDevice()) {
  $('elsewhere').hidden = false;
} else if (storedDevice()) start();
else showSetup();
