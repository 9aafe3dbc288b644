/* Tessera meeting page: plain JS, no bundler. Speaks the socket.io events of
 * src/server/events.ts and the signal shapes of src/rtc/negotiation.ts:
 * two RTCPeerConnections, `pub` (we offer what we send) and `sub` (the server offers the others). */
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const roomId = decodeURIComponent(location.pathname.split('/')[2] || '');
  const params = new URLSearchParams(location.search);
  const ACTIVE = ['starting', 'recording'];

  const state = {
    socket: null,
    pub: null,
    sub: null,
    local: null, // MediaStream (camera + mic)
    screen: null, // { stream, sender }
    recording: null,
    participants: [],
    me: null,
    sources: {}, // sub mid -> { participantId, name, purpose }
    tiles: new Map(), // key -> { el, stream }
    pubQueue: Promise.resolve(),
    pendingAnswer: null,
    left: false,
    canRecord: true,
    rejoining: false,
    rejoins: 0,
    needRejoin: false, // the socket went: join again once it is back
    // This person's answer to the running recording's consent request: null until they answer
    // (and when no recording asks). They may change it for as long as it records.
    consent: null,
  };

  function notice(message, level) {
    const div = document.createElement('div');
    div.className = 'notice' + (level === 'error' ? ' error' : '');
    div.textContent = message;
    $('notices').prepend(div);
    if (level !== 'error') setTimeout(() => div.remove(), 8000);
    while ($('notices').children.length > 5) $('notices').lastChild.remove();
  }
  function showError(err) {
    const e = err && err.error ? err.error : err;
    const msg = e && e.message ? e.message : String(e);
    notice((e && e.code ? e.code + ': ' : '') + msg, 'error');
    console.error('tessera:', e);
  }

  function request(event, payload) {
    return new Promise((resolve, reject) => {
      // Not queued while disconnected: socket.io would send it after a reconnection, stale.
      if (!state.socket || !state.socket.connected) return reject({ code: 'DISCONNECTED', message: event + ': not connected to the server' });
      state.socket.timeout(30000).emit(event, payload, (err, res) => {
        if (err) return reject({ code: 'TIMEOUT', message: event + ': no answer from the server' });
        if (!res || !res.ok) return reject(res && res.error ? res.error : { code: 'UNKNOWN', message: 'request failed' });
        resolve(res);
      });
    });
  }

  // ---- tiles -------------------------------------------------------------------------
  function tile(key, label, muted) {
    let t = state.tiles.get(key);
    if (!t) {
      const el = document.createElement('div');
      el.className = 'tile';
      el.dataset.key = key;
      const video = document.createElement('video');
      video.autoplay = true;
      video.playsInline = true;
      video.muted = !!muted;
      const span = document.createElement('span');
      span.className = 'label';
      el.append(video, span);
      $('tiles').append(el);
      t = { el, video, label: span, stream: new MediaStream() };
      video.srcObject = t.stream;
      state.tiles.set(key, t);
    }
    t.label.textContent = label;
    return t;
  }
  function removeTile(key) {
    const t = state.tiles.get(key);
    if (!t) return;
    t.el.remove();
    state.tiles.delete(key);
  }
  function nameOf(id) {
    const p = state.participants.find((x) => x.id === id);
    return p ? p.name : '';
  }

  // ---- recording UI ------------------------------------------------------------------
  function renderRecording() {
    const rec = state.recording;
    const active = !!rec && ACTIVE.includes(rec.status);
    $('recording-indicator').hidden = !active;
    const btn = $('record-toggle');
    btn.textContent = active ? 'Stop recording' : 'Record';
    btn.classList.toggle('active', active);
    // Not while reconnecting: between leaving and joining again the server refuses it (not in the
    // room), and a host's Stop lost that way left the recording running (seen with four
    // browsers on two cores: every connection failed at once and was rejoined).
    const away = state.rejoining || !!state.needRejoin;
    btn.disabled = state.left || !state.me || away || !state.canRecord || (rec && rec.status === 'stopping') || btn.dataset.busy === '1';
    btn.title = away ? 'Reconnecting…' : '';
  }
  /** Once answered, the answer can be changed: "Leave me out" while in, "Record me" while out. */
  function renderConsent() {
    const rec = state.recording;
    const t = $('consent-toggle');
    t.hidden = !(rec && ACTIVE.includes(rec.status)) || state.consent === null;
    t.textContent = state.consent ? 'Leave me out' : 'Record me';
    t.title = state.consent ? 'You are in the recording: leave it from now on' : 'You are left out of the recording: join it from now on';
  }
  async function answerConsent(accept) {
    const t = $('consent-toggle');
    t.disabled = true;
    try {
      await request('consent', { accept });
      $('consent').hidden = true;
      const changed = state.consent !== null;
      state.consent = accept;
      if (accept) notice('You are in the recording from now on.');
      else notice(changed ? 'You are left out of the recording from now on: what it already has of you stays in it.' : 'You are left out of the recording.');
    } catch (e) {
      showError(e);
    } finally {
      t.disabled = false;
      renderConsent();
    }
  }
  $('consent-accept').onclick = () => answerConsent(true);
  $('consent-decline').onclick = () => answerConsent(false);
  $('consent-toggle').onclick = () => answerConsent(!state.consent);

  function onRecordingState(s) {
    if (!s || s.roomId !== roomId) return;
    if (!(s.recording && ACTIVE.includes(s.recording.status))) {
      $('consent').hidden = true;
      state.consent = null;
    }
    const was = state.recording && ACTIVE.includes(state.recording.status);
    state.recording = s.recording;
    const now = s.recording && ACTIVE.includes(s.recording.status);
    if (now && !was) notice('Recording started: this meeting is being recorded.');
    if (!now && was && s.recording && s.recording.status !== 'failed') notice('Recording stopped.');
    renderRecording();
    renderConsent();
  }
  async function toggleRecord() {
    const btn = $('record-toggle');
    const active = state.recording && ACTIVE.includes(state.recording.status);
    btn.dataset.busy = '1';
    renderRecording();
    try {
      const res = await request(active ? 'record:stop' : 'record:start', {});
      if (res.recording) onRecordingState({ roomId, recording: res.recording });
    } catch (e) {
      showError(e);
    } finally {
      btn.dataset.busy = '';
      renderRecording();
    }
  }

  // ---- WebRTC ------------------------------------------------------------------------
  function gathered(pc) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState === 'complete') {
          pc.removeEventListener('icegatheringstatechange', done);
          resolve();
        }
      };
      pc.addEventListener('icegatheringstatechange', done);
      setTimeout(resolve, 2000); // host candidates are enough; the server learns the rest from STUN
    });
  }

  function purposeOf(track) {
    if (state.screen && state.screen.stream.getTracks().includes(track)) return 'screen';
    return track.kind === 'audio' ? 'mic' : 'camera';
  }

  // `?codec=h264` publishes H.264 instead of VP8 (what Safari and hardware encoders send), where
  // the browser can; the server forwards and records either.
  function preferVideoCodec(pc) {
    const want = (params.get('codec') || '').toLowerCase();
    if (!want || !window.RTCRtpSender || !RTCRtpSender.getCapabilities) return;
    const all = RTCRtpSender.getCapabilities('video').codecs;
    const first = all.filter((c) => c.mimeType.toLowerCase() === 'video/' + want && !/packetization-mode=0/.test(c.sdpFmtpLine || ''));
    if (!first.length) return;
    for (const t of pc.getTransceivers()) {
      if (t.sender && t.sender.track && t.sender.track.kind === 'video' && t.setCodecPreferences) {
        t.setCodecPreferences(first.concat(all.filter((c) => !first.includes(c))));
      }
    }
  }

  function negotiatePub() {
    state.pubQueue = state.pubQueue.then(async () => {
      if (state.left) return;
      const pc = state.pub;
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await gathered(pc);
      const tracks = {};
      for (const t of pc.getTransceivers()) {
        if (t.mid && t.sender.track) tracks[t.mid] = purposeOf(t.sender.track);
      }
      const answered = new Promise((resolve) => (state.pendingAnswer = resolve));
      await request('signal', { pc: 'pub', type: 'offer', sdp: pc.localDescription.sdp, tracks });
      await answered;
    }).catch(showError);
    return state.pubQueue;
  }

  async function onSignal(msg) {
    try {
      if (msg.pc === 'pub' && msg.type === 'answer') {
        await state.pub.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        if (state.pendingAnswer) state.pendingAnswer();
        state.pendingAnswer = null;
      } else if (msg.pc === 'sub' && msg.type === 'offer') {
        Object.assign(state.sources, msg.sources || {});
        if (!state.sub) {
          state.sub = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
          state.sub.ontrack = onRemoteTrack;
          const sub = state.sub;
          sub.onconnectionstatechange = () => {
            if (sub !== state.sub || sub.connectionState !== 'failed') return;
            showError({ code: 'RTC_FAILED', message: 'Media from the others could not connect (ICE failed).' });
            rejoin('the connection for the others\' media failed');
          };
        }
        await state.sub.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        const answer = await state.sub.createAnswer();
        await state.sub.setLocalDescription(answer);
        await gathered(state.sub);
        await request('signal', { pc: 'sub', type: 'answer', sdp: state.sub.localDescription.sdp });
        pruneTiles();
      }
    } catch (e) {
      showError(e);
    }
  }

  function onRemoteTrack(ev) {
    const mid = ev.transceiver && ev.transceiver.mid;
    const src = state.sources[mid];
    if (!src) return;
    const key = src.purpose === 'screen' ? src.participantId + ':screen:' + mid : src.participantId + ':camera';
    const label = (src.name || nameOf(src.participantId) || 'Guest') + (src.purpose === 'screen' ? ' (screen)' : '');
    const t = tile(key, label, false);
    t.stream.addTrack(ev.track);
    t.video.play().catch(() => undefined);
    ev.track.addEventListener('ended', () => {
      t.stream.removeTrack(ev.track);
      if (src.purpose === 'screen') removeTile(key);
    });
    ev.track.addEventListener('mute', () => {
      if (src.purpose === 'screen') setTimeout(() => ev.track.muted && removeTile(key), 500);
    });
  }

  function pruneTiles() {
    const present = new Set(state.participants.map((p) => p.id));
    for (const key of [...state.tiles.keys()]) {
      if (key === 'local' || key === 'local:screen') continue;
      if (!present.has(key.split(':')[0])) removeTile(key);
    }
    // screen tiles whose transceiver is no longer received
    if (state.sub) {
      const live = new Set();
      for (const t of state.sub.getTransceivers()) {
        const s = state.sources[t.mid];
        if (s && s.purpose === 'screen' && (t.currentDirection === 'recvonly' || t.currentDirection === 'sendrecv')) live.add(s.participantId + ':screen:' + t.mid);
      }
      for (const key of [...state.tiles.keys()]) if (key.includes(':screen:') && !live.has(key)) removeTile(key);
    }
  }

  // ---- controls ----------------------------------------------------------------------
  function toggleTrack(kind, btn, on, off) {
    if (!state.local) return;
    const tracks = kind === 'audio' ? state.local.getAudioTracks() : state.local.getVideoTracks();
    if (!tracks.length) return;
    const enabled = !tracks[0].enabled;
    tracks.forEach((t) => (t.enabled = enabled));
    btn.textContent = enabled ? on : off;
  }

  async function toggleScreen() {
    const btn = $('share-screen');
    if (state.screen) {
      stopScreen();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      const track = stream.getVideoTracks()[0];
      const sender = state.pub.addTrack(track, stream);
      preferVideoCodec(state.pub);
      state.screen = { stream, sender };
      track.addEventListener('ended', stopScreen);
      tile('local:screen', 'You (screen)', true).stream.addTrack(track);
      btn.textContent = 'Stop sharing';
      await negotiatePub();
    } catch (e) {
      showError({ code: 'SCREEN', message: 'Screen sharing failed: ' + (e && e.message ? e.message : e) });
    }
  }
  function stopScreen() {
    if (!state.screen) return;
    const { stream, sender } = state.screen;
    state.screen = null;
    stream.getTracks().forEach((t) => t.stop());
    try {
      state.pub.removeTrack(sender);
    } catch (e) {
      /* connection already closed */
    }
    removeTile('local:screen');
    $('share-screen').textContent = 'Share screen';
    negotiatePub();
  }

  async function leave() {
    if (state.left) return;
    state.left = true;
    try {
      await request('leave', {});
    } catch (e) {
      /* leaving anyway */
    }
    for (const pc of [state.pub, state.sub]) if (pc) pc.close();
    if (state.local) state.local.getTracks().forEach((t) => t.stop());
    if (state.screen) state.screen.stream.getTracks().forEach((t) => t.stop());
    state.socket.disconnect();
    for (const key of [...state.tiles.keys()]) removeTile(key);
    state.recording = null; // not in the room any more: nothing of it is shown
    ['mute-mic', 'mute-camera', 'share-screen', 'leave'].forEach((id) => ($(id).disabled = true));
    renderRecording();
    notice('You left the meeting.');
  }

  // ---- joining (and joining again) ---------------------------------------------------
  async function joinAndPublish() {
    const res = await request('join', { roomId, name: params.get('name') || undefined, token: params.get('token') || undefined });
    state.me = res.participantId;
    state.participants = res.participants;
    state.canRecord = res.canRecord !== false;
    const mine = state.tiles.get('local');
    if (mine) mine.label.textContent = res.name + ' (you)';
    onRecordingState({ roomId, recording: res.recording });

    const pub = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    state.pub = pub;
    pub.onconnectionstatechange = () => {
      if (pub !== state.pub || pub.connectionState !== 'failed') return;
      showError({ code: 'RTC_FAILED', message: 'Your media could not reach the server (ICE failed).' });
      rejoin('your media connection failed');
    };
    state.local.getTracks().forEach((t) => pub.addTrack(t, state.local));
    if (state.screen) state.screen.sender = pub.addTrack(state.screen.stream.getVideoTracks()[0], state.screen.stream);
    preferVideoCodec(pub);
    if (pub.getSenders().length) await negotiatePub();
  }

  /**
   * The server lost our media (it says so with `notice.rejoin` and has taken us out of the
   * room), or one of our connections failed: join again on the same socket with fresh
   * connections, keeping camera, microphone, mute state and screen share. Retries with backoff.
   */
  async function rejoin(reason) {
    if (state.left || state.rejoining) return;
    state.rejoining = true;
    document.body.dataset.rejoining = '1';
    renderRecording();
    notice('Reconnecting (' + reason + ')…');
    for (let attempt = 0; !state.left; attempt++) {
      for (const pc of [state.pub, state.sub]) if (pc) pc.close();
      state.pub = null;
      state.sub = null;
      state.sources = {};
      state.pubQueue = Promise.resolve();
      state.pendingAnswer = null;
      for (const key of [...state.tiles.keys()]) if (!key.startsWith('local')) removeTile(key);
      try {
        await request('leave', {}).catch(() => undefined); // in case only our side noticed
        await joinAndPublish();
        state.rejoins++;
        notice('Reconnected.');
        break;
      } catch (e) {
        if (e && e.code === 'DISCONNECTED') {
          // The socket went meanwhile: its 'connect' handler starts over once it is back.
          state.needRejoin = true;
          break;
        }
        showError(e);
        if (e && ['REC_ERR_UNAUTHORIZED', 'REC_ERR_FORBIDDEN', 'REC_ERR_CAPACITY'].includes(e.code)) break;
        await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * 2 ** attempt)));
      }
    }
    state.rejoining = false;
    if (!state.needRejoin) delete document.body.dataset.rejoining;
    renderRecording();
  }

  // ---- start -------------------------------------------------------------------------
  async function main() {
    $('room-title').textContent = 'Room ' + roomId;
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(roomId)) {
      showError({ code: 'REC_ERR_INVALID_ROOM_ID', message: 'room id must be 1–64 characters of A-Z a-z 0-9 _ -' });
      return;
    }
    try {
      state.local = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360, frameRate: 30 }, audio: true });
    } catch (e) {
      showError({ code: 'MEDIA', message: 'Camera/microphone unavailable (' + (e && e.message ? e.message : e) + '); joining without them.' });
      state.local = new MediaStream();
    }
    const mine = tile('local', (params.get('name') || 'You') + ' (you)', true);
    state.local.getVideoTracks().forEach((t) => mine.stream.addTrack(t));

    // socket.io reconnects by itself after a network blip (not after the server closed us on
    // purpose, e.g. while draining: then we reconnect ourselves). The server takes a person out
    // of the room when their socket goes, so a reconnection is a rejoin.
    state.socket = io({ transports: ['websocket'], reconnection: true, reconnectionDelay: 1000, reconnectionDelayMax: 10000 });
    state.socket.on('recording:state', onRecordingState);
    state.socket.on('participants', (list) => {
      state.participants = list;
      for (const [key, t] of state.tiles) {
        if (key.startsWith('local')) continue;
        const id = key.split(':')[0];
        const n = nameOf(id);
        if (n) t.label.textContent = n + (key.includes(':screen:') ? ' (screen)' : '');
      }
      pruneTiles();
    });
    state.socket.on('signal', onSignal);
    // A recording that needs consent: ask; whoever declines or does not answer is not recorded.
    // Asked again after a rejoin (the server knows the new connection as a new participant).
    state.socket.on('consent:request', () => {
      state.consent = null;
      $('consent').hidden = false;
      renderConsent();
    });
    state.socket.on('notice', (n) => {
      if (n.level === 'error') showError(n);
      else notice(n.message);
      if (n.rejoin) rejoin('the server lost your media');
      // The same person joined from elsewhere and took this seat: this page is out of the room.
      if (n.code === 'REC_ERR_REPLACED') leave();
    });
    state.socket.on('disconnect', (reason) => {
      if (state.left) return;
      notice('Lost the connection to the server (' + reason + '); reconnecting…');
      document.body.dataset.rejoining = '1';
      state.needRejoin = true;
      renderRecording();
      if (reason === 'io server disconnect') setTimeout(() => !state.left && state.socket.connect(), 2000);
    });
    state.socket.on('connect', () => {
      if (state.needRejoin && !state.left) {
        state.needRejoin = false;
        rejoin('the connection to the server came back');
      }
    });
    await new Promise((resolve) => {
      state.socket.once('connect', resolve);
      state.socket.once('connect_error', (e) => showError({ code: 'CONNECT', message: 'Cannot reach the server (' + (e && e.message ? e.message : e) + '); still trying…' }));
    });

    await joinAndPublish();

    $('mute-mic').onclick = () => toggleTrack('audio', $('mute-mic'), 'Mute mic', 'Unmute mic');
    $('mute-camera').onclick = () => toggleTrack('video', $('mute-camera'), 'Stop camera', 'Start camera');
    $('share-screen').onclick = toggleScreen;
    $('record-toggle').onclick = toggleRecord;
    $('leave').onclick = leave;
    ['mute-mic', 'mute-camera', 'share-screen', 'leave'].forEach((id) => ($(id).disabled = false));
    renderRecording();
    document.body.dataset.joined = '1';
  }

  /** What this browser sends, for support and tests (`await tessera.sendStats()` in the console):
   * its bandwidth estimate, which only grows when the server's transport-cc feedback arrives. */
  async function sendStats() {
    if (!state.pub) return null;
    const out = { availableOutgoingBitrate: null, videoBytesSent: 0 };
    (await state.pub.getStats()).forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && typeof s.availableOutgoingBitrate === 'number') out.availableOutgoingBitrate = s.availableOutgoingBitrate;
      if (s.type === 'outbound-rtp' && s.kind === 'video') out.videoBytesSent += s.bytesSent || 0;
    });
    return out;
  }
  window.tessera = Object.freeze({ sendStats, rejoins: () => state.rejoins, participantId: () => state.me });

  main().catch(showError);
})();
