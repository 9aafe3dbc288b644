/* /recordings: lists GET /api/recordings and plays each recording through a short-lived signed
 * URL (GET /api/recordings/:id/media-url; Range requests are the browser's). With API_TOKEN set
 * the page asks for the token and keeps it in this tab's sessionStorage: never in a URL, where
 * it would reach history, logs and Referer headers, and a <video> could not send it anyway. */
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const KEY = 'tessera.apiToken';
  const headers = () => {
    const token = sessionStorage.getItem(KEY);
    return token ? { Authorization: 'Bearer ' + token } : {};
  };
  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $('api-token').value.trim());
    $('api-token').value = '';
    $('token-form').hidden = true;
    load(false);
  });
  async function mediaUrl(id) {
    const res = await fetch('/api/recordings/' + encodeURIComponent(id) + '/media-url', { headers: headers() });
    const body = await res.json();
    if (!res.ok) throw new Error((body.error && body.error.code + ': ' + body.error.message) || res.statusText);
    return body.url;
  }
  function error(msg) {
    const d = document.createElement('div');
    d.className = 'notice error';
    d.textContent = msg;
    $('notices').prepend(d);
  }
  const fmtBytes = (b) => (b === undefined ? '' : b > 1e6 ? (b / 1e6).toFixed(1) + ' MB' : Math.round(b / 1e3) + ' kB');
  const fmtMs = (ms) => (ms === undefined ? '' : Math.floor(ms / 60000) + ':' + String(Math.floor((ms / 1000) % 60)).padStart(2, '0'));
  let cursor = null;
  let loading = false;
  async function load(more) {
    // One list request at a time: a second click on "More" while the first is on its way would
    // ask for the same page again and show its rows twice; and "More" after the last page
    // (no cursor) would ask for the first.
    if (loading || (more && !cursor)) return;
    loading = true;
    $('more').disabled = true;
    try {
      if (!more) cursor = null;
      const res = await fetch('/api/recordings' + (cursor ? '?cursor=' + encodeURIComponent(cursor) : ''), { headers: headers() });
      const body = await res.json();
      if (res.status === 401) {
        sessionStorage.removeItem(KEY);
        $('token-form').hidden = false;
        $('api-token').focus();
      }
      if (!res.ok) throw new Error((body.error && body.error.code + ': ' + body.error.message) || res.statusText);
      const tbody = $('list');
      if (!more) tbody.textContent = '';
      cursor = body.nextCursor || null;
      $('more').hidden = !cursor;
      for (const r of body.recordings) {
        const tr = document.createElement('tr');
        tr.dataset.id = r.id;
        const cells = [r.roomId, r.status + (r.error ? ' (' + r.error.code + ')' : ''), new Date(r.startedAt).toLocaleString(), fmtMs(r.durationMs), fmtBytes(r.bytes), r.participants.map((p) => p.name).join(', ')];
        for (const c of cells) {
          const td = document.createElement('td');
          td.textContent = c;
          tr.append(td);
        }
        const td = document.createElement('td');
        if (r.status === 'available') {
          const play = document.createElement('button');
          play.textContent = 'Play';
          play.className = 'play';
          play.onclick = async () => {
            try {
              const v = $('player');
              v.hidden = false;
              v.src = await mediaUrl(r.id);
              await v.play();
            } catch (e) {
              error('Cannot play: ' + e.message);
            }
          };
          const a = document.createElement('button');
          a.textContent = 'Download';
          a.className = 'download';
          a.onclick = async () => {
            try {
              const link = document.createElement('a');
              link.href = await mediaUrl(r.id);
              link.download = r.id + '.mp4';
              link.click();
            } catch (e) {
              error('Cannot download: ' + e.message);
            }
          };
          td.append(play, ' ', a);
        }
        tr.append(td);
        tbody.append(tr);
        if (r.tracks && r.tracks.length) {
          // The participants' own tracks, under the recording: fetched with the token (a header,
          // never a URL) and handed to the browser as a file.
          const sub = document.createElement('tr');
          sub.className = 'tracks';
          sub.hidden = true;
          const cell = document.createElement('td');
          cell.colSpan = 7;
          for (const t of r.tracks) {
            const b = document.createElement('button');
            b.className = 'track';
            b.textContent = t.kind + ' · ' + t.name + ' · ' + t.codec.toUpperCase() + ' · ' + fmtBytes(t.bytes) + (t.state === 'incomplete' ? ' (incomplete)' : '');
            b.onclick = async () => {
              try {
                const res = await fetch('/api/recordings/' + encodeURIComponent(r.id) + '/tracks/' + encodeURIComponent(t.id) + '/media', { headers: headers() });
                if (!res.ok) throw new Error(res.status + ' ' + res.statusText);
                const link = document.createElement('a');
                link.href = URL.createObjectURL(await res.blob());
                link.download = t.location.key.split('/').pop();
                link.click();
                setTimeout(() => URL.revokeObjectURL(link.href), 60000);
              } catch (e) {
                error('Cannot download the track: ' + e.message);
              }
            };
            cell.append(b, ' ');
          }
          sub.append(cell);
          const toggle = document.createElement('button');
          toggle.textContent = 'Tracks (' + r.tracks.length + ')';
          toggle.className = 'show-tracks';
          toggle.onclick = () => (sub.hidden = !sub.hidden);
          td.append(' ', toggle);
          tbody.append(sub);
        }
      }
      if (!more && !body.recordings.length) {
        const tr = document.createElement('tr');
        tr.innerHTML = '<td colspan="7">No recordings yet.</td>';
        tbody.append(tr);
      }
    } catch (e) {
      error('Could not list recordings: ' + e.message);
    } finally {
      loading = false;
      $('more').disabled = false;
    }
  }
  $('player').addEventListener('error', () => error('The player could not decode this recording.'));
  $('refresh').onclick = () => load(false);
  $('more').onclick = () => load(true);
  load(false);
})();
