// Loom studio: one page, hash routes, every action on a key. Data from the server (prompts, model output, names)
// only ever reaches the page as text: el() makes text nodes, and nothing here parses a string as HTML.
'use strict';

const api = '/studio/api';
const state = { user: null, csrf: '', tasks: [], selected: 0, guidelines: true, keys: null, timer: null };

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'on') for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  const main = document.getElementById('main');
  main.replaceChildren(...nodes);
}

/** Shortcuts of the current view, shown in the footer: [[key, what], …]. */
function shortcuts(list) {
  const all = [...list, ['g', 'guidelines'], ['Esc', 'tasks']];
  document.getElementById('keys').replaceChildren(...all.map(([key, what]) => el('span', {}, el('kbd', {}, key), ' ', what)));
}

async function call(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (method === 'POST') {
    init.headers['Content-Type'] = 'application/json';
    init.headers['X-CSRF-TOKEN'] = state.csrf;
    init.body = JSON.stringify(body ?? {});
  }
  const response = await fetch(api + path, init);
  const type = response.headers.get('content-type') ?? '';
  const data = type.includes('json') ? await response.json() : null;
  if (response.status === 401 && path !== '/login') {
    state.user = null;
    location.hash = '#/login';
  }
  if (!response.ok) throw new Error(data?.error ?? `HTTP ${response.status}`);
  return data;
}

function fmt(value, digits = 3) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '–';
}

function percent(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(1) + ' %' : '–';
}

function header() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!state.user) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const links = [el('a', { href: '#/tasks' }, 'Tasks')];
  if (state.user.role === 'Owner') links.push(el('a', { href: '#/leaderboard' }, 'Leaderboard'));
  nav.replaceChildren(...links);
  who.replaceChildren(`${state.user.name} (${state.user.role.toLowerCase()})`,
    el('button', { type: 'button', id: 'logout', on: { click: logout } }, 'Log out'));
}

async function logout() {
  await call('POST', '/logout');
  const session = await call('GET', '/session');
  state.user = null;
  state.csrf = session.csrf;
  location.hash = '#/login';
}

// ---- routes ----

async function route() {
  clearInterval(state.timer);
  state.timer = null;
  state.keys = null;
  const [, view, id] = location.hash.split('/');
  header();
  try {
    if (!state.user) {
      if (location.hash === '#/login') loginView();
      else location.hash = '#/login';
      return;
    }
    if (view === 'task') return await judgeView(decodeURIComponent(id));
    if (view === 'owner') return await ownerView(decodeURIComponent(id));
    if (view === 'leaderboard') return await leaderboardView();
    return await tasksView();
  } catch (error) {
    show(el('p', { class: 'error' }, error.message));
  }
}

function loginView() {
  const name = el('input', { id: 'name', name: 'name', autocomplete: 'username', required: true });
  const password = el('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const message = el('p', { class: 'error', id: 'login-error' });
  const form = el('form', { class: 'login', on: { submit: async event => {
    event.preventDefault();
    try {
      const session = await call('POST', '/login', { name: name.value, password: password.value });
      state.user = session.user;
      state.csrf = session.csrf;
      location.hash = '#/tasks';
    } catch (error) {
      message.textContent = error.message;
    }
  } } },
  el('h1', {}, 'Log in'), el('label', { for: 'name' }, 'Name'), name, el('label', { for: 'password' }, 'Password'), password,
  el('button', { type: 'submit', class: 'primary' }, 'Log in'), message);
  show(form);
  document.getElementById('keys').replaceChildren(el('span', {}, el('kbd', {}, 'Enter'), ' log in'));
  name.focus();
}

async function loadTasks() {
  state.tasks = await call('GET', '/tasks');
  return state.tasks;
}

async function tasksView() {
  const tasks = await loadTasks();
  const owner = state.user.role === 'Owner';
  state.selected = Math.min(state.selected, Math.max(0, tasks.length - 1));
  const rows = tasks.map((task, index) => el('tr', { class: index === state.selected ? 'selected' : null, 'data-task': task.id },
    el('td', {}, el('kbd', {}, index < 9 ? String(index + 1) : '')),
    el('td', {}, el('a', { href: `#/task/${encodeURIComponent(task.id)}` }, task.name), el('div', { class: 'muted' }, task.id)),
    el('td', {}, task.kind),
    el('td', { class: 'num' }, String(task.items)),
    el('td', { class: 'num mine' }, `${task.mine.done} done / ${task.mine.queue} queue`),
    owner ? el('td', {}, task.annotators.map(a => el('div', {}, `${a.annotator}: ${a.done} done / ${a.queue} queue`))) : null,
    owner ? el('td', {}, el('a', { href: `#/owner/${encodeURIComponent(task.id)}` }, 'Agreement & export')) : null));
  show(el('h1', {}, 'Tasks'),
    tasks.length === 0 ? el('p', { class: 'muted' }, 'No tasks yet: create one with `loom feedback task`.') : el('table', { id: 'tasks' },
      el('thead', {}, el('tr', {}, el('th', {}, ''), el('th', {}, 'Task'), el('th', {}, 'Kind'), el('th', { class: 'num' }, 'Items'),
        el('th', { class: 'num' }, 'You'), owner ? el('th', {}, 'Annotators') : null, owner ? el('th', {}, '') : null)),
      el('tbody', {}, rows)));
  const list = [['1–9', 'open task'], ['↑/↓', 'select'], ['Enter', 'open']];
  if (owner) list.push(['a', 'agreement & export'], ['l', 'leaderboard']);
  shortcuts(list);
  state.keys = event => {
    if (/^[1-9]$/.test(event.key) && Number(event.key) <= tasks.length) {
      location.hash = `#/task/${encodeURIComponent(tasks[Number(event.key) - 1].id)}`;
    } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      state.selected = Math.max(0, Math.min(tasks.length - 1, state.selected + (event.key === 'ArrowDown' ? 1 : -1)));
      rows.forEach((row, index) => row.classList.toggle('selected', index === state.selected));
    } else if (event.key === 'Enter' && tasks.length > 0) {
      location.hash = `#/task/${encodeURIComponent(tasks[state.selected].id)}`;
    } else if (event.key === 'a' && owner && tasks.length > 0) {
      location.hash = `#/owner/${encodeURIComponent(tasks[state.selected].id)}`;
    } else if (event.key === 'l' && owner) {
      location.hash = '#/leaderboard';
    }
  };
}

// ---- judging ----

function guidelinesPanel(task) {
  const children = [el('h2', {}, 'Guidelines'), el('p', { class: 'text' }, task.guidelines || 'No guidelines for this task.')];
  if (task.rubric) children.push(el('h2', {}, 'Rubric'), el('p', { class: 'text' }, task.rubric));
  return el('aside', { id: 'guidelines' }, children);
}

function promptBlock(prompt) {
  return el('section', { class: 'prompt', id: 'prompt' }, prompt.map(m =>
    el('div', { class: 'message' }, el('div', { class: 'role' }, m.role), el('pre', { class: 'text' }, m.content))));
}

const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

async function judgeView(taskId) {
  const task = (await loadTasks()).find(t => t.id === taskId);
  if (!task) throw new Error(`no task '${taskId}'`);
  const next = await call('GET', `/tasks/${encodeURIComponent(taskId)}/next`);
  const status = el('div', { class: 'status', id: 'status', role: 'status' });
  const title = el('h1', {}, `${task.name} · ${task.kind.toLowerCase()} · `,
    el('span', { id: 'progress' }, `${task.mine.done} done / ${task.mine.queue} queue`));
  const layout = el('div', { class: state.guidelines ? 'layout' : 'layout no-guidelines' });
  if (!next.item) {
    layout.append(el('div', {}, el('p', { id: 'empty' }, 'Your queue for this task is empty. Thank you!')), guidelinesPanel(task));
    show(title, layout);
    shortcuts([]);
    return;
  }
  const item = next.item;
  const work = el('div', { id: 'work', 'data-item': item.id }, promptBlock(item.prompt));
  layout.append(work, guidelinesPanel(task));
  show(title, layout);
  const submitted = { done: false };
  const submit = async body => {
    if (submitted.done) return null;
    try {
      const result = await call('POST', `/tasks/${encodeURIComponent(taskId)}/items/${encodeURIComponent(item.id)}`, body);
      submitted.done = true;
      status.className = 'status ok';
      status.textContent = 'Saved. Enter: next item.';
      return result;
    } catch (error) {
      status.className = 'status error';
      status.textContent = error.message;
      return null;
    }
  };
  const view = { Pairwise: compareView, Rank: rankView, Rating: rateView, Correction: correctView, Thumbs: thumbsView }[task.kind];
  const keys = view(task, item, work, submit, submitted);
  work.append(status);
  state.keys = event => {
    if (submitted.done && event.key === 'Enter' && !event.ctrlKey) { event.preventDefault(); route(); return; }
    keys(event);
  };
}

function compareView(task, item, work, submit, submitted) {
  const choices = [['1', 'First', 'A is better'], ['2', 'Second', 'B is better'], ['3', 'Tie', 'Tie'], ['4', 'BothBad', 'Both bad']];
  let choice = null;
  const cards = item.responses.map((r, index) => el('div', { class: 'response', id: `response-${letters[index]}` },
    el('div', { class: 'label' }, letters[index]), el('pre', { class: 'text' }, r.text), el('div', { class: 'version' })));
  const buttons = choices.map(([key, value, text]) => el('button', { type: 'button', 'data-choice': value, on: { click: () => pick(value) } },
    el('kbd', {}, key), ' ', text));
  const pick = value => {
    if (submitted.done) return;
    choice = value;
    buttons.forEach(b => b.classList.toggle('on', b.dataset.choice === value));
    cards[0].classList.toggle('chosen', value === 'First');
    cards[1].classList.toggle('chosen', value === 'Second');
  };
  const send = async () => {
    if (!choice) return;
    const result = await submit({ choice });
    if (result) result.shown.forEach((r, index) => { cards[index].querySelector('.version').textContent = `model: ${r.modelVersion}`; });
  };
  work.append(el('div', { class: 'pair' }, cards),
    el('div', { class: 'choices' }, buttons, el('button', { type: 'button', class: 'primary', on: { click: send } }, el('kbd', {}, 'Enter'), ' submit')));
  shortcuts([['1', 'A'], ['2', 'B'], ['3', 'tie'], ['4', 'both bad'], ['Enter', 'submit / next']]);
  return event => {
    const found = choices.find(c => c[0] === event.key);
    if (found) pick(found[1]);
    else if (event.key === 'Enter') { event.preventDefault(); send(); }
  };
}

function rankView(task, item, work, submit, submitted) {
  // order[k] = index (into the shown responses) of the response at position k, best first.
  const order = item.responses.map((_, index) => index);
  let selected = 0;
  let dragged = null;
  const list = el('ol', { class: 'ranking', id: 'ranking' });
  const versions = [];
  const render = () => {
    list.replaceChildren(...order.map((shownIndex, position) => el('li', {
      class: position === selected ? 'selected' : null, draggable: 'true', 'data-shown': shownIndex, 'data-label': letters[shownIndex],
      on: {
        click: () => { selected = position; render(); },
        dragstart: event => { dragged = position; event.dataTransfer.effectAllowed = 'move'; event.dataTransfer.setData('text/plain', String(position)); },
        dragover: event => { event.preventDefault(); event.currentTarget.classList.add('over'); },
        dragleave: event => event.currentTarget.classList.remove('over'),
        drop: event => { event.preventDefault(); if (dragged !== null) move(dragged, position); dragged = null; },
      },
    }, el('span', { class: 'position' }, `#${position + 1}`), el('span', { class: 'label' }, letters[shownIndex]),
    el('div', {}, el('pre', { class: 'text' }, item.responses[shownIndex].text), el('div', { class: 'version' }, versions[shownIndex] ?? '')))));
  };
  const move = (from, to) => {
    if (submitted.done || to < 0 || to >= order.length) return;
    const [moved] = order.splice(from, 1);
    order.splice(to, 0, moved);
    selected = to;
    render();
  };
  const send = async () => {
    const result = await submit({ ranking: [...order] });
    if (result) { result.shown.forEach((r, index) => { versions[index] = `model: ${r.modelVersion}`; }); render(); }
  };
  render();
  work.append(list, el('div', { class: 'choices' }, el('button', { type: 'button', class: 'primary', on: { click: send } }, el('kbd', {}, 'Enter'), ' submit')));
  shortcuts([['Tab', 'select next'], ['1–9', 'select position'], ['↑/↓', 'move up/down'], ['drag', 'reorder'], ['Enter', 'submit / next']]);
  return event => {
    if (event.key === 'Tab') { event.preventDefault(); selected = (selected + (event.shiftKey ? order.length - 1 : 1)) % order.length; render(); }
    else if (/^[1-9]$/.test(event.key) && Number(event.key) <= order.length) { selected = Number(event.key) - 1; render(); }
    else if (event.key === 'ArrowUp') { event.preventDefault(); move(selected, selected - 1); }
    else if (event.key === 'ArrowDown') { event.preventDefault(); move(selected, selected + 1); }
    else if (event.key === 'Enter') { event.preventDefault(); send(); }
  };
}

function singleResponse(item) {
  return el('div', { class: 'response', id: 'response' }, el('pre', { class: 'text' }, item.responses[0].text), el('div', { class: 'version' }));
}

function reveal(card, result) {
  if (result) card.querySelector('.version').textContent = `model: ${result.shown[0].modelVersion}`;
}

function rateView(task, item, work, submit, submitted) {
  const lines = (task.rubric ?? '').split('\n').map(line => line.trim()).filter(line => line.length > 0);
  let rating = null;
  const card = singleResponse(item);
  const rows = [1, 2, 3, 4, 5].map(score => el('li', { 'data-score': score, on: { click: () => pick(score) } },
    el('kbd', {}, String(score)), el('span', {}, lines[score - 1] ?? '')));
  const pick = score => {
    if (submitted.done) return;
    rating = score;
    rows.forEach(row => row.classList.toggle('on', Number(row.dataset.score) === score));
  };
  const send = async () => { if (rating) reveal(card, await submit({ rating })); };
  work.append(card, el('ol', { class: 'rubric', id: 'rubric' }, rows),
    el('button', { type: 'button', class: 'primary', on: { click: send } }, el('kbd', {}, 'Enter'), ' submit'));
  shortcuts([['1–5', 'rate'], ['Enter', 'submit / next']]);
  return event => {
    if (/^[1-5]$/.test(event.key)) pick(Number(event.key));
    else if (event.key === 'Enter') { event.preventDefault(); send(); }
  };
}

function correctView(task, item, work, submit, submitted) {
  const editor = el('textarea', { id: 'correction', spellcheck: 'true', 'aria-label': 'Corrected response' });
  editor.value = item.responses[0].text;
  const version = el('div', { class: 'version' });
  const send = async () => {
    const result = await submit({ correction: editor.value });
    if (result) { editor.readOnly = true; editor.blur(); version.textContent = `model: ${result.shown[0].modelVersion}`; }
  };
  work.append(el('h2', {}, 'Edit the response into a correct one'), editor, version,
    el('div', { class: 'choices' }, el('button', { type: 'button', class: 'primary', on: { click: send } }, el('kbd', {}, 'Ctrl+S'), ' submit')));
  shortcuts([['Ctrl+S', 'submit'], ['Ctrl+Enter', 'submit'], ['Enter', 'next (after submitting)']]);
  setTimeout(() => editor.focus(), 0);
  return event => {
    if (event.ctrlKey && (event.key === 's' || event.key === 'Enter')) { event.preventDefault(); if (!submitted.done) send(); }
  };
}

function thumbsView(task, item, work, submit) {
  const card = singleResponse(item);
  const send = async up => reveal(card, await submit({ thumbsUp: up }));
  work.append(card, el('div', { class: 'choices' },
    el('button', { type: 'button', on: { click: () => send(true) } }, el('kbd', {}, '+'), ' 👍 good'),
    el('button', { type: 'button', on: { click: () => send(false) } }, el('kbd', {}, '−'), ' 👎 bad')));
  shortcuts([['+', 'thumbs up'], ['−', 'thumbs down'], ['Enter', 'next']]);
  return event => {
    if (event.key === '+' || event.key === '=') send(true);
    else if (event.key === '-' || event.key === '−') send(false);
  };
}

// ---- owner views ----

async function ownerView(taskId) {
  if (state.user.role !== 'Owner') {
    show(el('p', { class: 'error', id: 'forbidden' }, 'Only owners see agreement and exports.'));
    shortcuts([]);
    return;
  }
  const task = (await loadTasks()).find(t => t.id === taskId);
  if (!task) throw new Error(`no task '${taskId}'`);
  const stats = el('div', { class: 'stats', id: 'agreement' });
  const progress = el('tbody');
  const updated = el('p', { class: 'muted', id: 'updated' });
  const minAgree = el('input', { id: 'min-agree', type: 'number', min: '1', value: '1', 'aria-label': 'Minimum agreeing annotators' });
  const exportButton = el('button', { type: 'button', id: 'export', class: 'primary', on: { click: () => download() } }, el('kbd', {}, 'e'), ' Export JSONL');
  const download = () => {
    const link = el('a', { href: `${api}/tasks/${encodeURIComponent(taskId)}/export?minAgree=${encodeURIComponent(minAgree.value || '1')}`, download: `${taskId}.jsonl` });
    document.body.append(link);
    link.click();
    link.remove();
  };
  const stat = (id, name, value) => el('div', { class: 'stat', id }, el('div', { class: 'value' }, value), el('div', { class: 'name' }, name));
  const refresh = async () => {
    const [agreement, tasks] = await Promise.all([call('GET', `/tasks/${encodeURIComponent(taskId)}/agreement`), loadTasks()]);
    stats.replaceChildren(
      stat('stat-items', 'items judged by ≥ 2 annotators', String(agreement.overlapItems)),
      stat('stat-percent', `raw agreement (${agreement.unitsCompared} ${agreement.units})`, percent(agreement.percentAgreement)),
      stat('stat-fleiss', "Fleiss' kappa", fmt(agreement.fleissKappa)),
      stat('stat-alpha', `Krippendorff's alpha (${agreement.alphaMetric.toLowerCase()})`, fmt(agreement.krippendorffAlpha)));
    const current = tasks.find(t => t.id === taskId) ?? task;
    progress.replaceChildren(...current.annotators.map(a => el('tr', {}, el('td', {}, a.annotator), el('td', { class: 'num' }, String(a.done)), el('td', { class: 'num' }, String(a.queue)))));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 2 s.`;
  };
  show(el('h1', {}, `Agreement · ${task.name}`), stats, updated,
    el('h2', {}, 'Progress per annotator'),
    el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Annotator'), el('th', { class: 'num' }, 'Done'), el('th', { class: 'num' }, 'Queue'))), progress),
    el('h2', {}, 'Export for finetuning'),
    el('div', { class: 'export' }, el('label', { for: 'min-agree' }, 'Only items where at least'), minAgree, el('span', {}, 'annotators agree'), exportButton));
  await refresh();
  state.timer = setInterval(() => refresh().catch(error => { updated.textContent = error.message; }), 2000);
  shortcuts([['e', 'export'], ['l', 'leaderboard']]);
  state.keys = event => {
    if (event.key === 'e') download();
    else if (event.key === 'l') location.hash = '#/leaderboard';
  };
}

async function leaderboardView() {
  if (state.user.role !== 'Owner') {
    show(el('p', { class: 'error', id: 'forbidden' }, 'Only owners see the leaderboard.'));
    shortcuts([]);
    return;
  }
  const rows = await call('GET', '/leaderboard');
  show(el('h1', {}, 'Arena leaderboard'),
    el('p', { class: 'muted' }, 'Bradley–Terry ratings from every pairwise judgement (ties count half, both-bad is left out), with 95 % bootstrap intervals.'),
    rows.length === 0 ? el('p', { class: 'muted' }, 'No pairwise judgements yet.') : el('table', { id: 'leaderboard' },
      el('thead', {}, el('tr', {}, el('th', {}, '#'), el('th', {}, 'Model version'), el('th', { class: 'num' }, 'Rating'),
        el('th', { class: 'num' }, '95 % interval'), el('th', { class: 'num' }, 'Games'), el('th', { class: 'num' }, 'Wins'), el('th', { class: 'num' }, 'Ties'))),
      el('tbody', {}, rows.map((row, index) => el('tr', {}, el('td', {}, String(index + 1)), el('td', {}, row.version),
        el('td', { class: 'num' }, fmt(row.rating, 0)), el('td', { class: 'num' }, `${fmt(row.low, 0)} – ${fmt(row.high, 0)}`),
        el('td', { class: 'num' }, String(row.games)), el('td', { class: 'num' }, String(row.wins)), el('td', { class: 'num' }, String(row.ties)))))));
  shortcuts([]);
}

// ---- keys and start ----

document.addEventListener('keydown', event => {
  const typing = event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement;
  if (typing && !event.ctrlKey) return;
  if (!typing && event.key === 'g' && state.user) {
    state.guidelines = !state.guidelines;
    document.querySelector('.layout')?.classList.toggle('no-guidelines', !state.guidelines);
    return;
  }
  if (!typing && event.key === 'Escape' && state.user) { location.hash = '#/tasks'; return; }
  if (event.altKey || event.metaKey) return;
  state.keys?.(event);
});

window.addEventListener('hashchange', route);

(async () => {
  try {
    const session = await call('GET', '/session');
    state.user = session.user;
    state.csrf = session.csrf;
  } catch (error) {
    show(el('p', { class: 'error' }, error.message));
    return;
  }
  await route();
})();
