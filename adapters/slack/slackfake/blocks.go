package slackfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Block Kit limits from https://docs.slack.dev/reference/block-kit/blocks
// and https://docs.slack.dev/reference/block-kit/block-elements/button-element.
const (
	maxBlocks        = 50
	maxSectionText   = 3000
	maxFields        = 10
	maxFieldText     = 2000
	maxBlockID       = 255
	maxElements      = 25
	maxContextEls    = 10
	maxButtonText    = 75
	maxButtonValue   = 2000
	maxActionID      = 255
	maxAltText       = 2000
	maxHeaderText    = 150
	maxImageURL      = 3000
	maxBlocksPayload = 1 << 20
)

type textObj struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type element struct {
	Type      string          `json:"type"`
	Text      json.RawMessage `json:"text"`
	ActionID  string          `json:"action_id"`
	Value     string          `json:"value"`
	URL       string          `json:"url"`
	ImageURL  string          `json:"image_url"`
	AltText   string          `json:"alt_text"`
	SlackFile *struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	} `json:"slack_file"`
}

type block struct {
	Type      string    `json:"type"`
	BlockID   string    `json:"block_id"`
	Text      *textObj  `json:"text"`
	Fields    []textObj `json:"fields"`
	Elements  []element `json:"elements"`
	Accessory *element  `json:"accessory"`
	ImageURL  string    `json:"image_url"`
	AltText   *string   `json:"alt_text"`
	SlackFile *struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	} `json:"slack_file"`
}

func runes(s string) int { return utf8.RuneCountInString(s) }

// validateBlocks checks a blocks array; it returns the block_ids. Call with
// mu held (image blocks look up files).
func (s *Server) validateBlocks(raw []byte) ([]string, error) {
	if len(raw) > maxBlocksPayload {
		return nil, errors.New("blocks too large")
	}
	var blocks []block
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, fmt.Errorf("blocks: %w", err)
	}
	if len(blocks) > maxBlocks {
		return nil, fmt.Errorf("%d blocks, at most %d", len(blocks), maxBlocks)
	}
	seen := map[string]bool{}
	var ids []string
	for i, b := range blocks {
		if runes(b.BlockID) > maxBlockID {
			return nil, fmt.Errorf("block %d: block_id longer than %d", i, maxBlockID)
		}
		if b.BlockID != "" {
			if seen[b.BlockID] {
				return nil, fmt.Errorf("block %d: duplicate block_id %q", i, b.BlockID)
			}
			seen[b.BlockID] = true
			ids = append(ids, b.BlockID)
		}
		if err := s.validateBlock(b); err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
	}
	return ids, nil
}

func (s *Server) validateBlock(b block) error {
	switch b.Type {
	case "section":
		if b.Text == nil && len(b.Fields) == 0 {
			return errors.New("section needs text or fields")
		}
		if b.Text != nil {
			if b.Text.Type != "mrkdwn" && b.Text.Type != "plain_text" {
				return fmt.Errorf("text type %q", b.Text.Type)
			}
			if runes(b.Text.Text) == 0 || runes(b.Text.Text) > maxSectionText {
				return fmt.Errorf("section text must be 1–%d characters (got %d)", maxSectionText, runes(b.Text.Text))
			}
		}
		if len(b.Fields) > maxFields {
			return fmt.Errorf("%d fields, at most %d", len(b.Fields), maxFields)
		}
		for _, f := range b.Fields {
			if runes(f.Text) > maxFieldText {
				return fmt.Errorf("field longer than %d", maxFieldText)
			}
		}
		if b.Accessory != nil {
			if err := s.validateAccessory(*b.Accessory); err != nil {
				return fmt.Errorf("accessory: %w", err)
			}
		}
	case "header":
		if b.Text == nil || b.Text.Type != "plain_text" || runes(b.Text.Text) > maxHeaderText {
			return errors.New("header needs plain_text of at most 150")
		}
	case "divider":
	case "actions":
		if len(b.Elements) == 0 || len(b.Elements) > maxElements {
			return fmt.Errorf("actions needs 1–%d elements (got %d)", maxElements, len(b.Elements))
		}
		actions := map[string]bool{}
		for _, e := range b.Elements {
			if e.Type != "button" {
				return fmt.Errorf("element type %q", e.Type)
			}
			var t textObj
			if json.Unmarshal(e.Text, &t) != nil || t.Type != "plain_text" || runes(t.Text) == 0 || runes(t.Text) > maxButtonText {
				return fmt.Errorf("button text must be plain_text of 1–%d", maxButtonText)
			}
			if runes(e.Value) > maxButtonValue || runes(e.ActionID) > maxActionID || runes(e.URL) > 3000 {
				return errors.New("button value, action_id or url too long")
			}
			if e.ActionID != "" {
				if actions[e.ActionID] {
					return fmt.Errorf("duplicate action_id %q", e.ActionID)
				}
				actions[e.ActionID] = true
			}
		}
	case "context":
		if len(b.Elements) == 0 || len(b.Elements) > maxContextEls {
			return fmt.Errorf("context needs 1–%d elements", maxContextEls)
		}
	case "image":
		if b.AltText == nil || runes(*b.AltText) > maxAltText {
			return errors.New("image needs alt_text of at most 2000")
		}
		hasFile := b.SlackFile != nil && (b.SlackFile.ID != "" || b.SlackFile.URL != "")
		if (b.ImageURL != "") == hasFile {
			return errors.New("image needs exactly one of image_url and slack_file")
		}
		if runes(b.ImageURL) > maxImageURL {
			return errors.New("image_url too long")
		}
		if hasFile {
			if b.SlackFile.ID != "" && b.SlackFile.URL != "" {
				return errors.New("slack_file with both id and url")
			}
			f, ok := s.files[b.SlackFile.ID]
			if !ok || !f.Completed || f.Deleted {
				return fmt.Errorf("slack_file %q: no such file the app can access", b.SlackFile.ID)
			}
		}
	default:
		return fmt.Errorf("unknown block type %q", b.Type)
	}
	return nil
}

// validateAccessory checks a section's accessory. Only the kinds Easel
// sends are accepted: an image element
// (https://docs.slack.dev/reference/block-kit/block-elements/image-element:
// alt_text, and exactly one of image_url and slack_file, the file one the
// app can access) or a button.
func (s *Server) validateAccessory(e element) error {
	switch e.Type {
	case "image":
		if e.AltText == "" || runes(e.AltText) > maxAltText {
			return errors.New("image element needs alt_text of 1–2000")
		}
		hasFile := e.SlackFile != nil && (e.SlackFile.ID != "" || e.SlackFile.URL != "")
		if (e.ImageURL != "") == hasFile {
			return errors.New("image element needs exactly one of image_url and slack_file")
		}
		if hasFile && e.SlackFile.ID != "" {
			f, ok := s.files[e.SlackFile.ID]
			if !ok || !f.Completed || f.Deleted {
				return fmt.Errorf("slack_file %q: no such file the app can access", e.SlackFile.ID)
			}
		}
	case "button":
	default:
		return fmt.Errorf("accessory type %q", e.Type)
	}
	return nil
}
