package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/strandws/strand/examples/chat/chatserver"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// recordSockets makes the page keep every WebSocket it opens in
// window.__strandSockets, so that the test can read what was negotiated
// (the page keeps its socket to itself).
const recordSockets = `(() => {
	if (window.__strandSockets) return;
	window.__strandSockets = [];
	const Native = window.WebSocket;
	window.WebSocket = class extends Native {
		constructor(...args) { super(...args); window.__strandSockets.push(this); }
	};
})()`

// shownMessage is a chat message as the page shows it.
type shownMessage struct {
	Seq  int    `json:"seq"`
	From string `json:"from"`
	Text string `json:"text"`
}

// TestChatInBrowser opens the chat page in two tabs of a headless Chromium;
// each joins one room and sends 20 messages through the page's own form.
// Both pages must end up showing all 40, in one order (by seq), with each
// sender's messages in the order sent; HTML in a message must show as text.
// The browser negotiates permessage-deflate (the page's socket reports
// the server's answer in extensions), its messages arrive compressed, and
// a long message comes back to both pages compressed. A screenshot is
// written under the test's temp dir.
func TestChatInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("Chromium is needed at %s for the browser test (%v). Install it with "+
			"`sudo apt-get install chromium`, or run ./scripts/deps.sh.", chromiumPath, err)
	}
	h := startChat(t, chatserver.Config{})
	dir := t.TempDir()
	profile := filepath.Join(dir, "chromium-profile")

	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1000, 760),
	)
	browserCtx, browserCancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	stopped := false
	stopBrowser := func() {
		if stopped {
			return
		}
		stopped = true
		// Close the browser gracefully, then wait for the process to exit.
		ctx, cancel := context.WithTimeout(browserCtx, chatTimeout)
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("closing the browser: %v", err)
		}
		cancel()
		browserCancel()
		allocCancel()
		require.Empty(t, browserProcesses(t, profile), "the browser process is still running")
	}
	t.Cleanup(stopBrowser)
	// Start the browser, so that the tabs below share it.
	require.NoError(t, chromedp.Do(browserCtx), "start %s", chromiumPath)

	pageURL := "http://" + h.addr + "/?room=browser"
	names := []string{"alice", "bob"}
	tabs := make([]context.Context, len(names))
	for i := range names {
		tab, cancel := chromedp.NewContext(browserCtx)
		t.Cleanup(cancel)
		ctx, cancelT := context.WithTimeout(tab, 60*time.Second)
		t.Cleanup(cancelT)
		tabs[i] = ctx
	}

	// Both join the room with the page's join form.
	for i, name := range names {
		require.NoError(t, chromedp.Do(tabs[i],
			chromedp.Navigate(pageURL),
			chromedp.WaitVisible(chromedp.ID("join-form")),
			// The tabs share a profile: the page may remember the last name.
			chromedp.Evaluate[chromedp.Void](`document.getElementById("name").value = ""`),
			chromedp.Evaluate[chromedp.Void](recordSockets),
			chromedp.SendKeys(chromedp.ID("name"), name),
			chromedp.Click(chromedp.ID("join")),
		), "%s joins", name)
		_, err := chromedp.Run(tabs[i], chromedp.Poll[bool](`document.getElementById("status").dataset.state === "open"`))
		require.NoError(t, err, "%s's page connects", name)
		ext, err := chromedp.Run(tabs[i], chromedp.Evaluate[string](`window.__strandSockets.at(-1).extensions`))
		require.NoError(t, err)
		require.Equal(t, noTakeoverAnswer, ext, "%s's socket negotiated permessage-deflate", name)
	}
	// Alice sees Bob arrive.
	_, err := chromedp.Run(tabs[0], chromedp.Poll[bool](
		`[...document.querySelectorAll("#messages li.event")].some(e => e.textContent === "bob joined.")`))
	require.NoError(t, err, "alice sees bob join")

	// Each sends 20 messages through the form, both at once.
	const perPage = 20
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Go(func() {
			for k := range perPage {
				if err := chromedp.Do(tabs[i],
					chromedp.SetValue(chromedp.ID("message"), fmt.Sprintf("%s %02d", name, k)),
					chromedp.Click(chromedp.ID("send")),
				); err != nil {
					errs[i] = fmt.Errorf("%s sends %d: %w", name, k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	const readMessages = `[...document.querySelectorAll("#messages li.msg")].map(li => ({
		seq: Number(li.dataset.seq), from: li.dataset.from, text: li.querySelector(".text").textContent}))`
	shown := make([][]shownMessage, len(names))
	for i, name := range names {
		_, err := chromedp.Run(tabs[i], chromedp.Poll[bool](
			fmt.Sprintf(`document.querySelectorAll("#messages li.msg").length >= %d`, 2*perPage)))
		require.NoError(t, err, "%s's page shows %d messages", name, 2*perPage)
		shown[i], err = chromedp.Run(tabs[i], chromedp.Evaluate[[]shownMessage](readMessages))
		require.NoError(t, err)
		require.Len(t, shown[i], 2*perPage, "%s's page", name)
		next := map[string]int{}
		for j, m := range shown[i] {
			require.Equal(t, j+1, m.Seq, "%s's page: message %d", name, j)
			require.Equal(t, fmt.Sprintf("%s %02d", m.From, next[m.From]), m.Text, "%s's page: %s's order", name, m.From)
			next[m.From]++
		}
		require.Equal(t, map[string]int{"alice": perPage, "bob": perPage}, next)
	}
	require.Equal(t, shown[0], shown[1], "both pages show one order")

	// Markup in a message is shown as text, not parsed.
	const markup = `<img src="x" onerror="document.title='pwned'"><b>bold?</b>`
	require.NoError(t, chromedp.Do(tabs[1],
		chromedp.SetValue(chromedp.ID("message"), markup),
		chromedp.Click(chromedp.ID("send")),
	))
	for i := range names {
		_, err := chromedp.Run(tabs[i], chromedp.Poll[bool](
			fmt.Sprintf(`document.querySelectorAll("#messages li.msg").length === %d`, 2*perPage+1)))
		require.NoError(t, err)
		last, err := chromedp.Run(tabs[i], chromedp.Evaluate[string](
			`[...document.querySelectorAll("#messages li.msg .text")].pop().textContent`))
		require.NoError(t, err)
		require.Equal(t, markup, last)
		elems, err := chromedp.Run(tabs[i], chromedp.Evaluate[int](`document.querySelectorAll("#messages img, #messages b").length`))
		require.NoError(t, err)
		require.Zero(t, elems, "markup became elements")
		title, err := chromedp.Run(tabs[i], chromedp.Title())
		require.NoError(t, err)
		require.NotEqual(t, "pwned", title)
	}

	// A message over the compression threshold goes to both pages
	// compressed, and shows whole.
	long := strings.Repeat("Compressed on the way out, inflated by the browser. ", 30)
	require.NoError(t, chromedp.Do(tabs[0],
		chromedp.SetValue(chromedp.ID("message"), long),
		chromedp.Click(chromedp.ID("send")),
	))
	for i := range names {
		_, err := chromedp.Run(tabs[i], chromedp.Poll[bool](
			fmt.Sprintf(`document.querySelectorAll("#messages li.msg").length === %d`, 2*perPage+2)))
		require.NoError(t, err)
		last, err := chromedp.Run(tabs[i], chromedp.Evaluate[string](
			`[...document.querySelectorAll("#messages li.msg .text")].pop().textContent`))
		require.NoError(t, err)
		require.Equal(t, long, last)
	}
	st := h.Server.Stats()
	require.Equal(t, st.Accepted, st.Compressed, "every page's socket negotiated permessage-deflate")
	require.NotZero(t, st.MessagesInCompressed, "the browser sends compressed")
	require.GreaterOrEqual(t, st.MessagesOutCompressed, uint64(len(names)), "the long message went out compressed to every page")
	t.Logf("stats: %d sockets, %d of %d messages in compressed, %d of %d out",
		st.Accepted, st.MessagesInCompressed, st.MessagesIn, st.MessagesOutCompressed, st.MessagesOut)

	png, err := chromedp.Run(tabs[0], chromedp.CaptureScreenshot())
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(png, []byte("\x89PNG")), "screenshot is a PNG")
	shot := filepath.Join(dir, "chat.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot: %s", shot)

	stopBrowser()
}

// browserProcesses returns the PIDs of processes whose command line names
// the profile directory: the browser this test started, and its helpers.
func browserProcesses(t *testing.T, profile string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	require.NoError(t, err)
	var pids []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone
		}
		if strings.Contains(string(b), profile) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}
