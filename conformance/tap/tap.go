// Package tap is pyrunc's own minimal TAP 13 producer. It is built in place
// of github.com/mndrix/tap-go (not packaged in Debian) when compiling the
// runtime-tools validation suite, so it offers exactly the calls that suite
// makes: New, Header, Ok, Pass, Fail, Skip, Todo, Diagnostic(f), YAML and
// AutoPlan.
package tap

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// counter is shared by a T and the TODO views derived from it, so that test
// numbers stay consecutive whichever view reports.
type counter struct {
	mu   sync.Mutex
	last int
	out  io.Writer
}

// T writes one TAP stream. The zero value is not usable: call New.
type T struct {
	c    *counter
	todo bool
}

// New returns a producer writing to standard output.
func New() *T {
	return &T{c: &counter{out: os.Stdout}}
}

// Header prints the version line and, when the number of tests is known in
// advance (n > 0), the plan. With n == 0 the plan comes from AutoPlan.
func (t *T) Header(n int) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	fmt.Fprintln(t.c.out, "TAP version 13")
	if n > 0 {
		fmt.Fprintf(t.c.out, "1..%d\n", n)
	}
}

// Ok reports one test point.
func (t *T) Ok(passed bool, description string) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.c.last++
	status := "ok"
	if !passed {
		status = "not ok"
	}
	line := fmt.Sprintf("%s %d", status, t.c.last)
	if description != "" {
		line += " - " + oneLine(description)
	}
	if t.todo {
		line += " # TODO"
	}
	fmt.Fprintln(t.c.out, line)
}

// Pass reports a passing test point.
func (t *T) Pass(description string) { t.Ok(true, description) }

// Fail reports a failing test point.
func (t *T) Fail(description string) { t.Ok(false, description) }

// Skip reports count skipped test points, all with the same reason.
func (t *T) Skip(count int, reason string) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i := 0; i < count; i++ {
		t.c.last++
		fmt.Fprintf(t.c.out, "ok %d # SKIP %s\n", t.c.last, oneLine(reason))
	}
}

// Todo returns a view whose test points carry the TODO directive: a TAP
// consumer does not count their failures.
func (t *T) Todo() *T {
	return &T{c: t.c, todo: true}
}

// Diagnostic prints a comment; every line of a multi-line message is
// prefixed so that it cannot be mistaken for a test point.
func (t *T) Diagnostic(message string) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(message, "\n"), "\n") {
		fmt.Fprintln(t.c.out, "# "+l)
	}
}

// Diagnosticf is Diagnostic with fmt.Sprintf formatting.
func (t *T) Diagnosticf(format string, args ...interface{}) {
	t.Diagnostic(fmt.Sprintf(format, args...))
}

// YAML attaches a structured diagnostic block to the previous test point.
// Every line is indented, so nested TAP (a container's output) stays inert.
func (t *T) YAML(message interface{}) error {
	body, err := yaml.Marshal(message)
	if err != nil {
		return err
	}
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	var b strings.Builder
	b.WriteString("  ---\n")
	for _, l := range strings.Split(strings.TrimRight(string(body), "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("  ...\n")
	_, err = io.WriteString(t.c.out, b.String())
	return err
}

// AutoPlan prints the plan from the number of test points reported so far;
// it belongs at the end of a stream whose Header had no count.
func (t *T) AutoPlan() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	fmt.Fprintf(t.c.out, "1..%d\n", t.c.last)
}

// oneLine keeps a description on its test point's line (a newline would
// start a line that TAP consumers misread) and escapes '#', which would
// otherwise open a directive.
func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", " ")
	return strings.ReplaceAll(s, "#", "\\#")
}
