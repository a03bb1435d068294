package server_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/protocol"
)

// changeFrame is the union of the change-event frames' fields.
type changeFrame struct {
	Type           string                   `json:"type"`
	ConversationID string                   `json:"conversationId"`
	MessageID      string                   `json:"messageId"`
	Seq            int64                    `json:"seq"`
	Body           string                   `json:"body"`
	DeletedBy      string                   `json:"deletedBy"`
	Reason         string                   `json:"reason"`
	Emoji          string                   `json:"emoji"`
	UserID         string                   `json:"userId"`
	Added          bool                     `json:"added"`
	Counts         []protocol.ReactionCount `json:"counts"`
	ExpireAfter    int64                    `json:"expireAfter"`
	Message        *protocol.Message        `json:"message"`
}

func decodeChange(t *testing.T, raw []byte) changeFrame {
	t.Helper()
	var c changeFrame
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return c
}

// waitChange waits for the next frame of type typ on w.
func waitChange(t *testing.T, w *wsConn, typ string) changeFrame {
	t.Helper()
	return decodeChange(t, w.WaitFor(typ, 5*time.Second).Raw)
}

// Every lifecycle operation over REST and over the WebSocket, seen live by
// another member, and a device that was away catching up through sync.
func TestMessageLifecycle(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var opts []option
			if engine == "postgres" {
				opts = append(opts, withPostgres(t))
			}
			ts := start(t, opts...)
			alice, bob, eve := ts.Register("alice"), ts.Register("bob"), ts.Register("eve")
			g := alice.Group("team", bob)
			path := "/api/v1/conversations/" + g.ID + "/messages/"
			b := bob.Dial()
			a := alice.Dial()

			m := alice.Send(g.ID, "the secret plan")                                           // 1
			m2 := alice.Send(g.ID, "second")                                                   // 2
			r := alice.Do("PATCH", path+m.ID, map[string]string{"body": "the secret plan v2"}) // 3
			must(t, r.Status == 200, "edit: %d %s", r.Status, r.Body)
			var edited protocol.Message
			r.Decode(t, &edited)
			must(t, edited.Body == "the secret plan v2" && edited.EditedAt != nil, "edited %+v", edited)
			e := waitChange(t, b, "message_edited")
			must(t, e.Seq == 3 && e.MessageID == m.ID && e.Body == "the secret plan v2", "live edit %+v", e)

			// WebSocket: react, edit refused, reply.
			a.Write(map[string]any{"type": "react", "id": "r1", "conversationId": g.ID, "messageId": m2.ID, "emoji": "🎉"}) // 4
			ack := a.WaitFor("ack", 5*time.Second)
			must(t, ack.ID == "r1" && len(ack.Message.Reactions) == 1 && ack.Message.Reactions[0].Me, "react ack %+v", ack.Message)
			rf := waitChange(t, b, "reaction")
			must(t, rf.Seq == 4 && rf.Emoji == "🎉" && rf.Added && rf.UserID == alice.User.ID && len(rf.Counts) == 1, "live reaction %+v", rf)
			b.Write(map[string]any{"type": "edit", "id": "e1", "conversationId": g.ID, "messageId": m.ID, "body": "mine"})
			er := b.WaitFor("error", 5*time.Second)
			must(t, er.ID == "e1" && er.Code == "forbidden", "edit by another member: %+v", er)
			b.Write(map[string]any{"type": "send", "id": "s1", "conversationId": g.ID, "clientId": "rep1", "body": "ok", "replyTo": m.ID}) // 5
			ack = b.WaitFor("ack", 5*time.Second)
			must(t, ack.Message.ReplyTo != nil && ack.Message.ReplyTo.ID == m.ID && ack.Message.ReplyTo.Excerpt == "the secret plan v2",
				"reply ack %+v", ack.Message)

			// REST reactions with an escaped emoji in the path.
			r = bob.Do("PUT", path+m2.ID+"/reactions/"+url.PathEscape("👍🏽"), nil) // 6
			must(t, r.Status == 200, "PUT reaction: %d %s", r.Status, r.Body)
			r = bob.Do("PUT", path+m2.ID+"/reactions/"+url.PathEscape("no"), nil)
			must(t, r.Status == 400 && r.Code() == "invalid_request", "bad emoji: %d %s", r.Status, r.Body)
			r = bob.Do("DELETE", path+m2.ID+"/reactions/"+url.PathEscape("👍🏽"), nil) // 7
			must(t, r.Status == 200, "DELETE reaction: %d %s", r.Status, r.Body)

			// Non-members and messages of other conversations: 404.
			r = eve.Do("PATCH", path+m.ID, map[string]string{"body": "x"})
			must(t, r.Status == 404, "non-member edit: %d", r.Status)
			r = eve.Do("DELETE", path+m.ID, nil)
			must(t, r.Status == 404, "non-member delete: %d", r.Status)
			other := alice.Direct(eve)
			r = alice.Do("DELETE", "/api/v1/conversations/"+other.ID+"/messages/"+m.ID, nil)
			must(t, r.Status == 404, "delete naming another conversation's message: %d", r.Status)

			// Delete for everyone, then the settings change.
			r = alice.Do("DELETE", path+m.ID, nil) // 8
			must(t, r.Status == 200, "delete: %d %s", r.Status, r.Body)
			var tomb protocol.Message
			r.Decode(t, &tomb)
			must(t, tomb.Body == "" && tomb.Deleted != nil && tomb.Deleted.By == alice.User.ID, "tombstone %+v", tomb)
			d := waitChange(t, b, "message_deleted")
			must(t, d.Seq == 8 && d.MessageID == m.ID && d.Reason == "deleted", "live delete %+v", d)
			r = alice.Do("PATCH", path+m.ID, map[string]string{"body": "back"})
			must(t, r.Status == 409 && r.Code() == "conflict", "edit of a tombstone: %d %s", r.Status, r.Body)
			r = bob.Do("PUT", "/api/v1/conversations/"+g.ID+"/settings", map[string]any{"expireAfter": 3600})
			must(t, r.Status == 403, "member changing a group setting: %d", r.Status)
			r = alice.Do("PUT", "/api/v1/conversations/"+g.ID+"/settings", map[string]any{"expireAfter": 3600}) // 9
			must(t, r.Status == 200, "settings: %d %s", r.Status, r.Body)
			s := waitChange(t, b, "conversation_settings")
			must(t, s.Seq == 9 && s.ExpireAfter == 3600, "live settings %+v", s)
			last := alice.Send(g.ID, "disappearing") // 10
			must(t, last.ExpiresAt != nil && last.Seq == 10, "message sent under expireAfter %+v", last)

			// History: current state, no deleted text; the reply's quote follows.
			hist := bob.History(g.ID, 0)
			for _, h := range hist {
				must(t, !strings.Contains(h.Body, "secret"), "history shows deleted text: %+v", h)
				if h.ID == m.ID {
					must(t, h.Deleted != nil, "history of the deleted message %+v", h)
				}
				if h.ReplyTo != nil {
					must(t, h.ReplyTo.Deleted && h.ReplyTo.Excerpt == "", "quote of a deleted message %+v", h.ReplyTo)
				}
			}

			// A device that was away: one cursor, every seq once, in order.
			b2 := bob.Dial()
			b2.Sync("sync1", map[string]int64{g.ID: 0})
			for want := int64(1); want <= 10; want++ {
				f := b2.Next(5 * time.Second)
				for f.Type == "presence" {
					f = b2.Next(5 * time.Second)
				}
				must(t, !strings.Contains(string(f.Raw), "secret"), "sync frame carries deleted text: %s", f.Raw)
				seq := f.Seq
				if f.Type == "message" {
					seq = f.Message.Seq
				}
				must(t, seq == want, "sync frame %s has seq %d, want %d", f.Raw, seq, want)
			}
			synced := b2.WaitFor("synced", 5*time.Second)
			must(t, synced.Cursors[g.ID] == 10, "synced %v", synced.Cursors)
		})
	}
}

// Changes have a rate-limit bucket of the message limit's size, apart from
// sends: reacting fast is refused without stopping the user from writing.
func TestChangesRateLimited(t *testing.T) {
	ts := start(t, withArgs("-rate-messages", "3/1m"))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	g := alice.Group("team", bob)
	m := alice.Send(g.ID, "hi")
	react := "/api/v1/conversations/" + g.ID + "/messages/" + m.ID + "/reactions/" + url.PathEscape("👍")
	for i, method := range []string{"PUT", "DELETE", "PUT"} {
		r := alice.Do(method, react, nil)
		must(t, r.Status == 200, "change %d: %d %s", i, r.Status, r.Body)
	}
	r := alice.Do("DELETE", react, nil)
	must(t, r.Status == 429 && r.Code() == "rate_limited" && r.Header.Get("Retry-After") != "", "fourth change: %d %s", r.Status, r.Body)
	alice.Send(g.ID, "still allowed to write")
}
