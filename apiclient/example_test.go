package apiclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/easelbot/easel/apiclient"
)

// Submit a job to an Easel on this machine (open mode needs no key) and
// follow its events until it ends, then save the first image. Examples that
// need a running server are compiled, not run; the tests in this package
// run the same calls against a real server.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := apiclient.New("http://127.0.0.1:8080", os.Getenv("EASEL_API_KEY"), nil)
	if err != nil {
		log.Fatal(err)
	}
	sub, err := c.Submit(ctx, apiclient.JobRequest{Prompt: "a lighthouse at dusk", Steps: 20}, "")
	if err != nil {
		log.Fatal(err)
	}
	err = c.Events(ctx, sub.ID, 0, func(e apiclient.Event) error {
		switch e.Type {
		case apiclient.EventQueued:
			fmt.Println("position", e.Position)
		case apiclient.EventProgress:
			fmt.Printf("step %d/%d\n", e.Step, e.Steps)
		case apiclient.EventFailed:
			fmt.Println("failed:", e.Message)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	png, err := c.Image(ctx, sub.ID, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("lighthouse.png", png, 0o644); err != nil {
		log.Fatal(err)
	}
}

// A retried submit with the same idempotency key returns the job the first
// one created, so a lost answer never queues the job twice. Refusals are
// *APIError values naming the field, or saying when to retry.
func ExampleClient_Submit() {
	ctx := context.Background()
	c, err := apiclient.New("https://easel.example.org", os.Getenv("EASEL_API_KEY"), nil)
	if err != nil {
		log.Fatal(err)
	}
	seed := int64(42)
	sub, err := c.Submit(ctx, apiclient.JobRequest{Prompt: "a red fox in snow", Seed: &seed, Count: 2, User: "alice"}, "order-1234")
	var ae *apiclient.APIError
	switch {
	case errors.As(err, &ae) && ae.RetryAfter > 0:
		fmt.Println("busy; retry in", ae.RetryAfter)
	case errors.As(err, &ae):
		fmt.Println("refused:", ae.Field, ae.Message)
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println("queued", sub.ID, "at position", sub.Position)
	}
}

// Job answers the job's current state; Cancel stops a
// queued or running job.
func ExampleClient_Job() {
	ctx := context.Background()
	c, err := apiclient.New("http://127.0.0.1:8080", "", nil)
	if err != nil {
		log.Fatal(err)
	}
	j, err := c.Job(ctx, "01J…")
	if err != nil {
		log.Fatal(err)
	}
	if j.Status == "queued" || j.Status == "running" {
		if err := c.Cancel(ctx, j.ID); err != nil {
			log.Fatal(err)
		}
	}
	for _, img := range j.Images {
		fmt.Println(img.URL, img.Seed)
	}
}
