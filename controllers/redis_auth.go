package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

// reconcileRedisAuth ensures the Secret with the managed Redis password and
// returns the password. It is generated once: a password already in the Secret
// (generated earlier, or set by a person) is kept, because a new one locks the
// chat servers out of Redis until both have restarted.
func (r *ChatClusterReconciler) reconcileRedisAuth(ctx context.Context, cc *chatv1alpha1.ChatCluster, a applier) ([]byte, applyResult, error) {
	sec := &corev1.Secret{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: redisAuthName(cc)}, sec)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, 0, fmt.Errorf("get Secret %s: %w", redisAuthName(cc), err)
	}
	pw := sec.Data[RedisPasswordKey]
	if len(pw) == 0 {
		if pw, err = newRedisPassword(); err != nil {
			return nil, 0, err
		}
	}
	res, err := a.apply(ctx, RedisAuthSecret(cc, pw))
	return pw, res, err
}

// newRedisPassword returns 256 random bits in hex: no character needs quoting in
// a URL, a redis.conf or a shell.
func newRedisPassword() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate Redis password: %w", err)
	}
	return []byte(hex.EncodeToString(b)), nil
}
