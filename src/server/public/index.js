/* The front door (`/`): a room and a name, or an invitation, lead to the meeting page
 * /r/:roomId?name=NAME (open server) or /r/:roomId?token=JWT (server with AUTH_SECRET, which
 * the page is told by `data-auth="token"` on <body>). The token's room is read here only to
 * know where to go; the server verifies the token when the meeting page joins. */
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
  const tokensOnly = document.body.dataset.auth === 'token';

  function error(msg) {
    $('notices').textContent = '';
    const d = document.createElement('div');
    d.className = 'notice error';
    d.setAttribute('role', 'alert');
    d.textContent = msg;
    $('notices').append(d);
  }

  /** A room id nobody is likely to use yet (48 random bits). */
  function newRoomId() {
    const bytes = crypto.getRandomValues(new Uint8Array(6)); // not randomUUID: that needs https
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    return 'room-' + hex.slice(0, 4) + '-' + hex.slice(4, 8) + '-' + hex.slice(8);
  }

  /** The room an invitation (a link or a bare token) is for, with the token, or null. */
  function readInvitation(text) {
    let token = text.trim();
    const m = /[?&]token=([^&#\s]+)/.exec(token);
    if (m) token = decodeURIComponent(m[1]);
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    try {
      const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const bin = atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, '='));
      const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
      if (typeof claims.room !== 'string' || !ROOM_RE.test(claims.room)) return null;
      return { room: claims.room, name: typeof claims.name === 'string' ? claims.name : '', token };
    } catch (e) {
      return null;
    }
  }

  const room = $('room');
  const name = $('name');
  function checkRoom() {
    room.value = room.value.trim();
    room.setCustomValidity(ROOM_RE.test(room.value) ? '' : 'A room is 1–64 characters of A–Z, a–z, 0–9, _ and -.');
  }
  function checkName() {
    const n = name.value.trim();
    name.setCustomValidity(n.length >= 1 && n.length <= 64 ? '' : 'Enter your name (up to 64 characters).');
  }
  room.addEventListener('input', () => room.setCustomValidity(''));
  name.addEventListener('input', () => name.setCustomValidity(''));

  try {
    name.value = localStorage.getItem('tessera.name') || '';
  } catch (e) {
    /* storage disabled: nothing to pre-fill */
  }
  const asked = new URLSearchParams(location.search).get('room');
  if (asked && ROOM_RE.test(asked)) room.value = asked;

  $('new-room').onclick = () => {
    room.value = newRoomId();
    room.setCustomValidity('');
    name.focus();
  };

  $('room-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    checkRoom();
    checkName();
    if (!$('room-form').reportValidity()) return;
    try {
      localStorage.setItem('tessera.name', name.value.trim());
    } catch (e) {
      /* storage disabled */
    }
    location.assign('/r/' + encodeURIComponent(room.value) + '?name=' + encodeURIComponent(name.value.trim()));
  });

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const inv = readInvitation($('token').value);
    if (!inv) {
      error('That is not an invitation: paste the whole link or token your host sent.');
      return;
    }
    const q = '?token=' + encodeURIComponent(inv.token) + (inv.name ? '&name=' + encodeURIComponent(inv.name) : '');
    location.assign('/r/' + encodeURIComponent(inv.room) + q);
  });

  if (tokensOnly) {
    // This server admits people by invitation only: a room and a name alone would be refused.
    $('room-form').hidden = true;
    $('token-help').textContent = 'This server admits people with an invitation from their host. Paste the link or token you were sent.';
    $('token').focus();
  } else {
    (room.value ? name : room).focus();
  }
})();
