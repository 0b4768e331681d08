-- A realistic shop, for tests/discovery: customers, their orders several hops deep, composite
-- keys, self-references, links to other customers, lookup tables, and personal tables no
-- foreign key reaches. Portable: SQLite, PostgreSQL and MariaDB run it as it is (statements end
-- with ";" at the end of a line). Customer 1 (ada) has rows almost everywhere; 2 (bob) and
-- 3 (cy) share some of them with her.

CREATE TABLE countries (code VARCHAR(2) PRIMARY KEY, label VARCHAR(60) NOT NULL);
CREATE TABLE currencies (code VARCHAR(3) PRIMARY KEY, label VARCHAR(60) NOT NULL);
CREATE TABLE coupons (code VARCHAR(20) PRIMARY KEY, percent_off INTEGER NOT NULL);
CREATE TABLE stores (
  id INTEGER PRIMARY KEY, label VARCHAR(60) NOT NULL, manager_email VARCHAR(120) NOT NULL
);
CREATE TABLE staff (
  id INTEGER PRIMARY KEY, email VARCHAR(120) NOT NULL, full_name VARCHAR(120) NOT NULL,
  store_id INTEGER, FOREIGN KEY (store_id) REFERENCES stores (id)
);
CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  email VARCHAR(120) NOT NULL,
  full_name VARCHAR(120) NOT NULL,
  phone VARCHAR(40),
  password_hash VARCHAR(200) NOT NULL,
  date_of_birth DATE,
  referrer_id INTEGER,
  country_code VARCHAR(2),
  FOREIGN KEY (referrer_id) REFERENCES customers (id),
  FOREIGN KEY (country_code) REFERENCES countries (code)
);
CREATE TABLE addresses (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, street VARCHAR(120) NOT NULL,
  city VARCHAR(60) NOT NULL, postcode VARCHAR(12) NOT NULL, country_code VARCHAR(2) NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers (id),
  FOREIGN KEY (country_code) REFERENCES countries (code)
);
CREATE TABLE product_categories (
  id INTEGER PRIMARY KEY, label VARCHAR(60) NOT NULL, parent_id INTEGER,
  FOREIGN KEY (parent_id) REFERENCES product_categories (id)
);
CREATE TABLE products (
  id INTEGER PRIMARY KEY, category_id INTEGER NOT NULL, title VARCHAR(120) NOT NULL,
  price DECIMAL(10, 2) NOT NULL, FOREIGN KEY (category_id) REFERENCES product_categories (id)
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  gift_recipient_id INTEGER,
  store_id INTEGER,
  shipping_address_id INTEGER,
  coupon_code VARCHAR(20),
  currency VARCHAR(3) NOT NULL,
  placed_on DATE NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers (id),
  FOREIGN KEY (gift_recipient_id) REFERENCES customers (id),
  FOREIGN KEY (store_id) REFERENCES stores (id),
  FOREIGN KEY (shipping_address_id) REFERENCES addresses (id),
  FOREIGN KEY (coupon_code) REFERENCES coupons (code),
  FOREIGN KEY (currency) REFERENCES currencies (code)
);
CREATE TABLE order_items (
  order_id INTEGER NOT NULL, line_no INTEGER NOT NULL, product_id INTEGER NOT NULL,
  quantity INTEGER NOT NULL, PRIMARY KEY (order_id, line_no),
  FOREIGN KEY (order_id) REFERENCES orders (id),
  FOREIGN KEY (product_id) REFERENCES products (id)
);
CREATE TABLE order_item_notes (
  id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, line_no INTEGER NOT NULL,
  note VARCHAR(200) NOT NULL,
  FOREIGN KEY (order_id, line_no) REFERENCES order_items (order_id, line_no)
);
CREATE TABLE invoices (
  id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, invoice_number VARCHAR(20) NOT NULL,
  issued_on DATE NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id)
);
CREATE TABLE payments (
  id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, iban VARCHAR(34),
  amount DECIMAL(10, 2) NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id)
);
CREATE TABLE refunds (
  id INTEGER PRIMARY KEY, payment_id INTEGER NOT NULL, reason VARCHAR(200),
  FOREIGN KEY (payment_id) REFERENCES payments (id)
);
CREATE TABLE shipments (
  id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, carrier VARCHAR(40) NOT NULL,
  tracking_no VARCHAR(40) NOT NULL, FOREIGN KEY (order_id) REFERENCES orders (id)
);
CREATE TABLE shipment_events (
  id INTEGER PRIMARY KEY, shipment_id INTEGER NOT NULL, status VARCHAR(20) NOT NULL,
  happened_on DATE NOT NULL, FOREIGN KEY (shipment_id) REFERENCES shipments (id)
);
CREATE TABLE carts (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE TABLE cart_items (
  cart_id INTEGER NOT NULL, product_id INTEGER NOT NULL, quantity INTEGER NOT NULL,
  PRIMARY KEY (cart_id, product_id), FOREIGN KEY (cart_id) REFERENCES carts (id),
  FOREIGN KEY (product_id) REFERENCES products (id)
);
CREATE TABLE wishlists (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, title VARCHAR(60) NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE TABLE wishlist_items (
  wishlist_id INTEGER NOT NULL, product_id INTEGER NOT NULL,
  PRIMARY KEY (wishlist_id, product_id), FOREIGN KEY (wishlist_id) REFERENCES wishlists (id),
  FOREIGN KEY (product_id) REFERENCES products (id)
);
CREATE TABLE reviews (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, product_id INTEGER NOT NULL,
  rating INTEGER NOT NULL, body VARCHAR(500),
  FOREIGN KEY (customer_id) REFERENCES customers (id),
  FOREIGN KEY (product_id) REFERENCES products (id)
);
CREATE TABLE review_comments (
  id INTEGER PRIMARY KEY, review_id INTEGER NOT NULL, reply_to INTEGER,
  author_id INTEGER NOT NULL, body VARCHAR(500) NOT NULL,
  FOREIGN KEY (review_id) REFERENCES reviews (id),
  FOREIGN KEY (reply_to) REFERENCES review_comments (id),
  FOREIGN KEY (author_id) REFERENCES customers (id)
);
CREATE TABLE messages (
  id INTEGER PRIMARY KEY, sender_id INTEGER NOT NULL, recipient_id INTEGER NOT NULL,
  body VARCHAR(500) NOT NULL,
  FOREIGN KEY (sender_id) REFERENCES customers (id),
  FOREIGN KEY (recipient_id) REFERENCES customers (id)
);
CREATE TABLE support_tickets (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, subject VARCHAR(200) NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE TABLE ticket_messages (
  id INTEGER PRIMARY KEY, ticket_id INTEGER NOT NULL, staff_id INTEGER, body VARCHAR(500),
  FOREIGN KEY (ticket_id) REFERENCES support_tickets (id),
  FOREIGN KEY (staff_id) REFERENCES staff (id)
);
CREATE TABLE login_events (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, ip_address VARCHAR(45) NOT NULL,
  happened_on DATE NOT NULL, FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE TABLE api_tokens (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, token VARCHAR(64) NOT NULL,
  FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE TABLE consents (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, topic VARCHAR(40) NOT NULL,
  given_on DATE NOT NULL, FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE TABLE loyalty_accounts (
  tenant_id INTEGER NOT NULL, account_no INTEGER NOT NULL, customer_id INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, account_no), FOREIGN KEY (customer_id) REFERENCES customers (id)
);
CREATE TABLE loyalty_transactions (
  id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, account_no INTEGER NOT NULL,
  points INTEGER NOT NULL,
  FOREIGN KEY (tenant_id, account_no) REFERENCES loyalty_accounts (tenant_id, account_no)
);
CREATE TABLE newsletter_signups (
  id INTEGER PRIMARY KEY, email VARCHAR(120) NOT NULL, signed_up_on DATE NOT NULL
);
CREATE TABLE audit_entries (
  id INTEGER PRIMARY KEY, actor_email VARCHAR(120) NOT NULL, action VARCHAR(60) NOT NULL
);
CREATE TABLE exchange_rates (
  currency VARCHAR(3) NOT NULL, day DATE NOT NULL, rate DECIMAL(12, 6) NOT NULL,
  PRIMARY KEY (currency, day), FOREIGN KEY (currency) REFERENCES currencies (code)
);

INSERT INTO countries VALUES ('DE', 'Germany'), ('FR', 'France');
INSERT INTO currencies VALUES ('EUR', 'Euro');
INSERT INTO coupons VALUES ('WELCOME', 10);
INSERT INTO stores VALUES (1, 'Berlin', 'berlin-manager@example.com');
INSERT INTO staff VALUES (1, 'eve@example.com', 'Eve Agent', 1);
INSERT INTO customers VALUES
  (1, 'ada@example.com', 'Ada Lovelace', '+44 20 7946 0000', 'x', '1815-12-10', NULL, 'DE'),
  (2, 'bob@example.com', 'Bob Babbage', NULL, 'x', NULL, 1, 'FR'),
  (3, 'cy@example.com', 'Cy Young', NULL, 'x', NULL, 1, NULL);
INSERT INTO addresses VALUES
  (1, 1, '1 Analytical Way', 'London', 'N1 1AA', 'DE'),
  (2, 2, '2 Difference Road', 'Paris', '75001', 'FR');
INSERT INTO product_categories VALUES (1, 'Books', NULL), (2, 'Maths', 1);
INSERT INTO products VALUES (1, 2, 'Notes on the Engine', 12.50), (2, 1, 'Poems', 8.00);
INSERT INTO orders VALUES
  (1, 1, NULL, 1, 1, 'WELCOME', 'EUR', '2026-01-02'),
  (2, 1, 2, NULL, 1, NULL, 'EUR', '2026-02-03'),
  (3, 2, 1, 1, 2, NULL, 'EUR', '2026-03-04');
INSERT INTO order_items VALUES (1, 1, 1, 1), (1, 2, 2, 3), (2, 1, 2, 1), (3, 1, 1, 2);
INSERT INTO order_item_notes VALUES
  (1, 1, 2, 'gift wrap'), (2, 3, 1, 'not ada''s: order 3 line 1'), (3, 2, 1, 'fragile');
INSERT INTO invoices VALUES (1, 1, 'INV-1', '2026-01-02'), (2, 3, 'INV-2', '2026-03-04');
INSERT INTO payments VALUES
  (1, 1, 'DE89370400440532013000', 42.00), (2, 3, NULL, 25.00), (3, 2, NULL, 8.00);
INSERT INTO refunds VALUES (1, 1, 'late'), (2, 2, 'broken');
INSERT INTO shipments VALUES (1, 1, 'DHL', 'T1'), (2, 3, 'UPS', 'T2');
INSERT INTO shipment_events VALUES
  (1, 1, 'sent', '2026-01-03'), (2, 1, 'delivered', '2026-01-04'), (3, 2, 'sent', '2026-03-05');
INSERT INTO carts VALUES (1, 1), (2, 3);
INSERT INTO cart_items VALUES (1, 1, 1), (1, 2, 2), (2, 2, 1);
INSERT INTO wishlists VALUES (1, 1, 'Birthday'), (2, 2, 'Later');
INSERT INTO wishlist_items VALUES (1, 1), (2, 2);
INSERT INTO reviews VALUES (1, 1, 1, 5, 'Visionary'), (2, 2, 2, 3, 'Fine');
INSERT INTO review_comments VALUES
  (1, 1, NULL, 2, 'Agreed'), (2, 1, 1, 1, 'Thank you'), (3, 2, NULL, 1, 'Too harsh'),
  (4, 2, 3, 3, 'Not harsh at all');
INSERT INTO messages VALUES (1, 1, 2, 'Hello Bob'), (2, 2, 1, 'Hello Ada'), (3, 2, 3, 'Hi Cy');
INSERT INTO support_tickets VALUES (1, 1, 'Where is my order?'), (2, 3, 'Refund');
INSERT INTO ticket_messages VALUES
  (1, 1, NULL, 'It has not arrived'), (2, 1, 1, 'It is on its way'), (3, 2, 1, 'Done');
INSERT INTO login_events VALUES (1, 1, '192.0.2.1', '2026-01-01'), (2, 2, '192.0.2.2', '2026-01-01');
INSERT INTO api_tokens VALUES (1, 1, 'secret-token-of-ada'), (2, 2, 'secret-token-of-bob');
INSERT INTO consents VALUES (1, 1, 'newsletter', '2026-01-01');
INSERT INTO loyalty_accounts VALUES (1, 1, 1), (1, 2, 2), (2, 2, 1), (2, 1, 3);
INSERT INTO loyalty_transactions VALUES
  (1, 1, 1, 10), (2, 1, 2, 20), (3, 2, 2, 30), (4, 2, 1, 40), (5, 2, 2, 50);
INSERT INTO newsletter_signups VALUES (1, 'ada@example.com', '2026-01-01');
INSERT INTO audit_entries VALUES (1, 'eve@example.com', 'refund');
INSERT INTO exchange_rates VALUES ('EUR', '2026-01-01', 1.0);
