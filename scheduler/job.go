package scheduler

import (
	"encoding/json"
	"time"
)

// Status is a job's state.
type Status string

// Job states: queued → dispatched → running → succeeded | failed | canceled,
// with running → queued on retry.
const (
	StatusQueued     Status = "queued"
	StatusDispatched Status = "dispatched"
	StatusRunning    Status = "running"
	StatusSucceeded  Status = "succeeded"
	StatusFailed     Status = "failed"
	StatusCanceled   Status = "canceled"
)

// Terminal reports whether no further transition can happen.
func (s Status) Terminal() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCanceled
}

// SubmitRequest is a new job as the commands layer hands it over.
type SubmitRequest struct {
	// Tenant owns the job ("discord:<guild>", "slack:<team>", "api:<name>").
	Tenant string
	// User is the member of the tenant who asked.
	User string
	// Payload is the generation request as JSON (the worker decodes it as an
	// sdclient.Request); the scheduler does not look inside.
	Payload json.RawMessage
	// Origin says where results go (adapter-specific JSON); opaque here.
	Origin json.RawMessage
	// Cost is the job's GPU work estimate in cost units (1 = 512×512, 20
	// steps, one image). Zero means 1.
	Cost float64
	// Images is the number of images the job makes (for quotas).
	Images int
	// IdempotencyKey, when set, makes a repeated submit of the same key by
	// the same tenant return the first job instead of creating another.
	IdempotencyKey string
	// Admission holds the limits to enforce; nil means none (weight 1).
	Admission *Admission
	// InitImage is an img2img job's source image: it is kept in the blob
	// store under the job (like its results; swept after the retention),
	// not in Payload, which only says it is there; a worker reads it with
	// Lease.InitImage. nil for none.
	InitImage []byte
	// Model is the checkpoint the job runs on, as the request names it; ""
	// when it names none (the backend's loaded or default one). Dispatch
	// hands the job only to a worker slot whose backend advertised this
	// model (Slot.Advertise), preferring one that has it loaded.
	Model string
}

// SubmitResult is the admitted job.
type SubmitResult struct {
	ID string
	// Position is the estimated place in line (1 = next), 0 when the job
	// was dispatched at once.
	Position int
	// Duplicate is true when IdempotencyKey matched an earlier job.
	Duplicate bool
	// Relaxed is true when the job went to the relax lane (over quota in
	// relax mode): it runs behind every normal job.
	Relaxed bool
}

// Job is a job record as read back from Redis.
type Job struct {
	ID          string
	Tenant      string
	User        string
	Status      Status
	Payload     json.RawMessage
	Origin      json.RawMessage
	Cost        float64
	Attempt     int
	MaxAttempts int
	CreatedAt   time.Time
	StartedAt   time.Time // zero until running
	FinishedAt  time.Time // zero until terminal
	Backend     string
	// Step, Steps and Fraction are the latest progress of the running attempt.
	Step     int
	Steps    int
	Fraction float64
	// Preview names the latest preview image of the running attempt ("" when
	// none yet), for renderers whose progress event carried none.
	Preview string
	// Images is the number of result images (succeeded only); ImageAttempt is
	// the attempt whose blobs hold them.
	Images       int
	ImageAttempt int
	Seeds        []int64
	// Subseeds are the images' variation subseeds, in order, when the job
	// was a variation (its request had a subseed strength); else nil. An
	// image is reproduced from its seed, subseed and the strength.
	Subseeds []int64
	// Info is the backend's info text when the record holds it; a long one
	// is kept in the blob store beside the images and Info is "" here
	// (Scheduler.Info reads it either way).
	Info       string
	ErrorCode  string
	Error      string
	CanceledBy string
	// queuedPosition is the position announced by the first event.
	queuedPosition int
	// seq is the Seq of the job's latest event.
	seq int64
	// infoStored says Info is kept in the blob store (InfoBlob), not in
	// the record.
	infoStored bool
	// startedKept says the job's second event is its first attempt's
	// started event, kept in the record (Backend, Attempt, StartedAt), not
	// in the job's stream (lua/lib.lua's emit).
	startedKept bool
}

// FinishedEventsGrace is how long a finished job's own event stream is
// kept (lua/lib.lua's EVGRACE): a client that follows or resumes within it
// reads the whole history; after it, History and Follow rebuild the first
// and the terminal event from the record, and the job costs Redis its
// record alone. A job whose events were all rebuildable from the record
// (queued, its first started, the terminal one) never had a stream; its
// started event is rebuilt for as long as the grace would have lasted.
const FinishedEventsGrace = 30 * time.Second

// queuedEvent is the job's first event, rebuilt from the record (it is
// never in the job's own stream).
func (j *Job) queuedEvent() Event {
	return Event{Type: EventQueued, JobID: j.ID, Tenant: j.Tenant, Seq: 1, Time: j.CreatedAt, Position: j.queuedPosition}
}

// startedEvent is the first attempt's started event rebuilt from the
// record, when the record keeps it (startedKept): while the job has no
// other event after it, and for a finished job as long as its stream
// would have lived (FinishedEventsGrace after the end, by now).
func (j *Job) startedEvent(now time.Time) (Event, bool) {
	if !j.startedKept || (j.Status.Terminal() && now.Sub(j.FinishedAt) >= FinishedEventsGrace) {
		return Event{}, false
	}
	return Event{Type: EventStarted, JobID: j.ID, Tenant: j.Tenant, Seq: 2, Time: j.StartedAt,
		Backend: j.Backend, Attempt: j.Attempt}, true
}

// terminalEvent is a finished job's last event, rebuilt from the record
// (the job's stream is deleted when it ends); false while the job runs.
func (j *Job) terminalEvent() (Event, bool) {
	ev := Event{JobID: j.ID, Tenant: j.Tenant, Seq: j.seq, Time: j.FinishedAt}
	switch j.Status {
	case StatusSucceeded:
		ev.Type, ev.Images, ev.Seeds, ev.Subseeds, ev.Info = EventSucceeded, j.Images, j.Seeds, j.Subseeds, j.Info
		if ev.Seeds == nil {
			ev.Seeds = []int64{}
		}
	case StatusFailed:
		ev.Type, ev.Code, ev.Message = EventFailed, j.ErrorCode, j.Error
	case StatusCanceled:
		ev.Type, ev.By = EventCanceled, j.CanceledBy
	default:
		return Event{}, false
	}
	return ev, true
}

// EventType names an event.
type EventType string

// Event types, shared by the relay, SSE and webhooks.
const (
	EventQueued    EventType = "queued"
	EventStarted   EventType = "started"
	EventProgress  EventType = "progress"
	EventRetrying  EventType = "retrying"
	EventSucceeded EventType = "succeeded"
	EventFailed    EventType = "failed"
	EventCanceled  EventType = "canceled"
	// EventPosition is a queued job's new place in line (and ETA), or why
	// it waits: sent when either changed, at most once a PositionInterval
	// per job (see positions.go).
	EventPosition EventType = "position"
)

// EventTypes are every event type, in a job's order.
var EventTypes = []EventType{EventQueued, EventPosition, EventStarted, EventProgress, EventRetrying,
	EventSucceeded, EventFailed, EventCanceled}

// Terminal reports whether the event ends the job.
func (t EventType) Terminal() bool {
	return t == EventSucceeded || t == EventFailed || t == EventCanceled
}

// Event is one job event. Fields beyond the common ones are set per type:
// queued {position, and reason when no backend has the job's model},
// position {position, eta_s, or waiting while no GPU backend is up}, started {backend, attempt}, progress {step, steps,
// fraction, eta_s, preview}, retrying {attempt, after_s, reason},
// succeeded {images, seeds, subseeds, info}, failed {code, message}, canceled {by}.
type Event struct {
	Type   EventType `json:"type"`
	JobID  string    `json:"job_id"`
	Tenant string    `json:"tenant"`
	// Seq numbers a job's events from 1; consumers drop duplicates and stale ones.
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`

	Position int     `json:"position,omitempty"`
	Backend  string  `json:"backend,omitempty"`
	Attempt  int     `json:"attempt,omitempty"`
	Step     int     `json:"step,omitempty"`
	Steps    int     `json:"steps,omitempty"`
	Fraction float64 `json:"fraction,omitempty"`
	ETASec   float64 `json:"eta_s,omitempty"`
	// Preview is the blob name of the latest preview image ("" when none).
	Preview string  `json:"preview,omitempty"`
	AfterS  float64 `json:"after_s,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	Images  int     `json:"images,omitempty"`
	Seeds   []int64 `json:"seeds,omitempty"`
	// Subseeds are a variation's subseeds (succeeded, variations only).
	Subseeds []int64 `json:"subseeds,omitempty"`
	Info     string  `json:"info,omitempty"`
	Code     string  `json:"code,omitempty"`
	Message  string  `json:"message,omitempty"`
	By       string  `json:"by,omitempty"`
	// Waiting says why a queued job cannot start (position): every worker
	// slot's backend is down.
	Waiting *Waiting `json:"waiting,omitempty"`
}

// Waiting is why queued jobs wait: no worker slot is offered, none runs a
// job, and these backends are reported down.
type Waiting struct {
	// Message is the English summary: "waiting for a GPU backend (gpu0
	// unreachable since 19:02:11 UTC)".
	Message  string        `json:"message"`
	Backends []DownBackend `json:"backends"`
}

// DownBackend is a backend a worker found unreachable, and since when.
type DownBackend struct {
	Name  string    `json:"name"`
	Since time.Time `json:"since"`
}
